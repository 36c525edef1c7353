package store_test

import (
	"context"
	"fmt"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// A relay that publishes asynchronously: it tracks each event before
// publishing it and marks it when the broker acknowledges. Acks arrive out
// of order; the committer never saves past an event still in flight.
func ExampleCommitter() {
	ctx := context.Background()
	j := journal.NewMemory() // pgjournal.New(pool) in production
	s, err := store.Open(ctx, j, "orders-to-kafka")
	if err != nil {
		panic(err)
	}
	c, err := store.NewCommitter(s, store.WithCommitEvery(1000), store.WithCommitInterval(time.Second))
	if err != nil {
		panic(err)
	}

	for seq := uint64(1); seq <= 3; seq++ {
		_ = c.Track("order-1", seq) // before publishing
	}
	_ = c.Mark("order-1", 1) // acks: 1, then 3; 2 is still in flight
	_ = c.Mark("order-1", 3)
	if err := c.Flush(ctx); err != nil {
		panic(err)
	}
	offsets, _ := s.Load(ctx)
	fmt.Println("saved while 2 is in flight:", offsets["order-1"])

	_ = c.Mark("order-1", 2)
	if err := c.Close(ctx); err != nil { // saves what is marked
		panic(err)
	}
	offsets, _ = s.Load(ctx)
	fmt.Println("saved after Close:", offsets["order-1"])
	fmt.Println("Mark after Close:", c.Mark("order-1", 4))

	// Output:
	// saved while 2 is in flight: 1
	// saved after Close: 3
	// Mark after Close: store: committer closed
}
