package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/migrations"
)

// A relay process: it stands by while another relay of the outbox leads,
// publishes every stream's events from its saved offset + 1 when it leads,
// and on Ctrl-C flushes its offsets and hands the leadership over.
//
// The example needs a database ($DATABASE_URL), so it is compiled but not
// run by go test (it has no Output comment); the package's tests run the
// same code against PostgreSQL.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	url := os.Getenv("DATABASE_URL")
	if err := migrations.Up(ctx, url); err != nil {
		fmt.Println(err)
		return
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	r, err := relay.New(relay.Config{
		Pool:   pool,
		Outbox: "orders-to-kafka",
		Publish: func(ctx context.Context, ev journal.Event) error {
			// Deliver ev to the broker; return once it is acknowledged.
			fmt.Printf("%s #%d\n", ev.PersistenceID, ev.SequenceNr)
			return nil
		},
		CommitEvery:    1000,           // save after 1000 events …
		CommitInterval: time.Second,    // … or a second, whichever comes first
		Logger:         slog.Default(), // failing saves, pauses, lost leases
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Run(ctx); err != nil { // nil after a graceful shutdown
		fmt.Println(err)
	}
}
