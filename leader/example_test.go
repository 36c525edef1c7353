package leader_test

import (
	"context"
	"errors"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
	"github.com/outboxkit/offsetstore/store"
)

// A relay that leads the outbox "orders" while it can and stands by
// otherwise. It needs a database (DATABASE_URL), so the example is
// compiled but not run: it has no Output comment.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	for {
		lease, err := leader.Acquire(ctx, pool, "orders") // waits while another relay leads
		if err != nil {
			log.Fatal(err)
		}
		err = relay(lease.Context(), pool)
		_ = lease.Release(ctx)
		switch {
		case errors.Is(lease.Err(), leader.ErrLost), errors.Is(err, store.ErrFenced):
			log.Printf("leadership lost (%v): standing by", lease.Err())
			continue
		case err != nil:
			log.Fatal(err)
		}
		return
	}
}

// relay publishes under ctx, which ends when the leadership does.
func relay(ctx context.Context, pool *pgxpool.Pool) error {
	offsets, err := store.Open(ctx, pgjournal.New(pool), "orders")
	if err != nil {
		return err
	}
	// … replay each source from its offset + 1, publish, and save …
	return offsets.Save(ctx, map[string]uint64{"order-1": 1})
}
