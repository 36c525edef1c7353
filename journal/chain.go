package journal

import (
	"context"
	"fmt"
	"math"
)

// Chain is the tail of a stream that a reader of snapshots and deltas
// needs: the newest live event whose manifest is a given base manifest and
// every live event above it, read in one consistent view.
type Chain struct {
	// Events are the live events from the newest one with the base
	// manifest on, in ascending order. When no live event has the base
	// manifest, they are every live event of the stream.
	Events []Event
	// Highest is the highest sequence number ever written, deleted rows
	// included; 0 for an unknown stream. It is at least the last event's.
	Highest uint64
}

// ChainReader is implemented by journals that read a Chain in one round
// trip and one consistent view (one SQL statement).
type ChainReader interface {
	// ReadChain returns the chain of persistenceID whose base events have
	// the manifest base. An unknown stream has the zero Chain. The events
	// are held in memory whole: it is meant for streams kept short by
	// pruning, such as the offset store's.
	ReadChain(ctx context.Context, persistenceID, base string) (Chain, error)
}

// ReadChain returns the chain of persistenceID with base manifest base:
// through j's ReadChain when j is a ChainReader, and otherwise by
// HighestSequenceNr, a Replay of the whole stream and HighestSequenceNr
// again, until the two agree, so that a writer that commits (and prunes)
// between the reads is seen, never half seen.
func ReadChain(ctx context.Context, j Journal, persistenceID, base string) (Chain, error) {
	if cr, ok := j.(ChainReader); ok {
		return cr.ReadChain(ctx, persistenceID, base)
	}
	before, err := j.HighestSequenceNr(ctx, persistenceID)
	for {
		if err != nil {
			return Chain{}, err
		}
		var events []Event
		for ev, err := range j.Replay(ctx, persistenceID, 1, math.MaxUint64, math.MaxUint64) {
			if err != nil {
				return Chain{}, err
			}
			if ev.Manifest == base {
				events = events[:0]
			}
			events = append(events, ev)
		}
		after, err := j.HighestSequenceNr(ctx, persistenceID)
		if err != nil {
			return Chain{}, err
		}
		if after == before {
			if n := len(events); n > 0 && events[n-1].SequenceNr > after {
				return Chain{}, fmt.Errorf("journal: read chain of %q: event %d above the highest sequence number %d", persistenceID, events[n-1].SequenceNr, after)
			}
			return Chain{Events: events, Highest: after}, nil
		}
		before = after
	}
}
