package pgjournal_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// Append a batch to a stream, then replay it. The example needs a
// database with the migrations applied, so it is compiled but not run.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	j := pgjournal.New(pool)

	// One statement, all or nothing.
	err = j.Append(ctx,
		journal.Event{PersistenceID: "order-42", SequenceNr: 1, Payload: []byte("created"), Manifest: "order-event"},
		journal.Event{PersistenceID: "order-42", SequenceNr: 2, Payload: []byte("paid"), Manifest: "order-event"},
	)
	if err != nil {
		log.Fatal(err) // errors.Is(err, journal.ErrSequenceConflict) if either exists
	}

	// Streamed in order, one row at a time.
	for ev, err := range j.Replay(ctx, "order-42", 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.SequenceNr, string(ev.Payload))
	}
}

// A journal on a caller's transaction joins it: the event commits or rolls
// back with the caller's own writes.
func ExampleNew_transaction() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx) // a no-op after Commit
	if _, err := tx.Exec(ctx, `UPDATE orders SET state = 'paid' WHERE id = 42`); err != nil {
		log.Fatal(err)
	}
	j := pgjournal.New(tx)
	if err := j.Append(ctx, journal.Event{PersistenceID: "order-42", SequenceNr: 3, Payload: []byte("paid")}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
}

// A journal on another table, in another schema.
func ExampleWithTable() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	j := pgjournal.New(pool, pgjournal.WithTable("outbox", "events"))
	highest, err := j.HighestSequenceNr(ctx, "order-42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(highest)
}
