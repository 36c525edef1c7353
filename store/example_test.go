package store_test

import (
	"context"
	"fmt"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// A relay loop: resume from the saved offsets, publish what is new, save.
func Example() {
	ctx := context.Background()
	j := journal.NewMemory() // pgjournal.New(pool) in production

	// The service's own events: two aggregates.
	for seq := uint64(1); seq <= 3; seq++ {
		_ = j.Append(ctx,
			journal.Event{PersistenceID: "order-1", SequenceNr: seq, Payload: []byte("e")},
			journal.Event{PersistenceID: "order-2", SequenceNr: seq, Payload: []byte("e")})
	}

	relay := func() {
		s, err := store.Open(ctx, j, "orders-to-kafka")
		if err != nil {
			panic(err) // never start from zero by mistake
		}
		offsets, _ := s.Load(ctx)
		for _, pid := range []string{"order-1", "order-2"} {
			published := 0
			for ev, err := range j.Replay(ctx, pid, offsets[pid]+1, ^uint64(0), ^uint64(0)) {
				if err != nil {
					panic(err)
				}
				published++ // publish ev here
				offsets[pid] = ev.SequenceNr
			}
			fmt.Printf("%s: published %d\n", pid, published)
		}
		if err := s.Save(ctx, offsets); err != nil {
			panic(err)
		}
	}

	relay()
	_ = j.Append(ctx, journal.Event{PersistenceID: "order-2", SequenceNr: 4, Payload: []byte("e")})
	relay() // a restart: resumes where the first run saved

	// Output:
	// order-1: published 3
	// order-2: published 3
	// order-1: published 0
	// order-2: published 1
}
