package journal_test

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/outboxkit/offsetstore/journal"
)

func Example() {
	ctx := context.Background()
	j := journal.NewMemory()

	err := j.Append(ctx,
		journal.Event{PersistenceID: "order-1", SequenceNr: 1, Payload: []byte("created")},
		journal.Event{PersistenceID: "order-1", SequenceNr: 2, Payload: []byte("paid")},
		journal.Event{PersistenceID: "order-2", SequenceNr: 1, Payload: []byte("created")},
	)
	if err != nil {
		fmt.Println("append:", err)
		return
	}

	// A second writer that read the same state races for the same number.
	err = j.Append(ctx, journal.Event{PersistenceID: "order-1", SequenceNr: 2, Payload: []byte("cancelled")})
	fmt.Println("conflict:", errors.Is(err, journal.ErrSequenceConflict))

	for ev, err := range j.Replay(ctx, "order-1", 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			fmt.Println("replay:", err)
			return
		}
		fmt.Printf("%s #%d: %s\n", ev.PersistenceID, ev.SequenceNr, ev.Payload)
	}

	// Deleting everything keeps the highest sequence number.
	if err := j.DeleteTo(ctx, "order-1", math.MaxUint64); err != nil {
		fmt.Println("delete:", err)
		return
	}
	highest, _ := j.HighestSequenceNr(ctx, "order-1")
	_, found, _ := j.Last(ctx, "order-1")
	fmt.Println("highest:", highest, "last found:", found)

	// Output:
	// conflict: true
	// order-1 #1: created
	// order-1 #2: paid
	// highest: 2 last found: false
}
