package journaltest

import (
	"context"
	"errors"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunChainReader checks journal.ChainReader. Run calls it for journals
// that implement the interface; it fails the test for one that does not.
// RunChainFallback checks journal.ReadChain on the journal's plain methods
// alone.
func RunChainReader(t *testing.T, newJournal Factory) {
	t.Helper()
	runChainCases(t, newJournal, func(t *testing.T, j journal.Journal) chainRead {
		cr, ok := j.(journal.ChainReader)
		if !ok {
			t.Fatalf("%T does not implement journal.ChainReader", j)
		}
		return cr.ReadChain
	})
}

// RunChainFallback checks journal.ReadChain on a journal seen through its
// journal.Journal methods only, as a backend without ChainReader is.
func RunChainFallback(t *testing.T, newJournal Factory) {
	t.Helper()
	runChainCases(t, newJournal, func(_ *testing.T, j journal.Journal) chainRead {
		return func(ctx context.Context, pid, base string) (journal.Chain, error) {
			return journal.ReadChain(ctx, plainJournal{j}, pid, base)
		}
	})
}

type chainRead = func(ctx context.Context, pid, base string) (journal.Chain, error)

const (
	chainBase  = "chain-full"
	chainDelta = "chain-delta"
)

func chainEvt(pid string, seq uint64, manifest string) journal.Event {
	ev := evt(pid, seq)
	ev.Manifest = manifest
	return ev
}

func runChainCases(t *testing.T, newJournal Factory, reader func(*testing.T, journal.Journal) chainRead) {
	t.Helper()
	cases := []struct {
		name string
		// setup writes the stream "c" (and others); want are the sequence
		// numbers of the chain's events, highest its Highest.
		setup   func(t *testing.T, j journal.Journal)
		want    []uint64
		highest uint64
	}{
		{"Unknown", func(*testing.T, journal.Journal) {}, nil, 0},
		{"OnlyBase", func(t *testing.T, j journal.Journal) {
			mustAppend(t, j, chainEvt("c", 1, chainBase), chainEvt("c", 2, chainBase))
		}, []uint64{2}, 2},
		{"BaseAndAbove", func(t *testing.T, j journal.Journal) {
			mustAppend(t, j, chainEvt("c", 1, chainBase), chainEvt("c", 2, chainDelta), chainEvt("c", 3, chainBase),
				chainEvt("c", 4, chainDelta), chainEvt("c", 5, chainDelta))
			mustAppend(t, j, chainEvt("other", 1, chainBase), chainEvt("other", 2, chainDelta))
		}, []uint64{3, 4, 5}, 5},
		{"NoBase", func(t *testing.T, j journal.Journal) {
			mustAppend(t, j, chainEvt("c", 1, chainDelta), chainEvt("c", 2, chainDelta))
		}, []uint64{1, 2}, 2},
		{"PrunedBelowBase", func(t *testing.T, j journal.Journal) {
			mustAppend(t, j, chainEvt("c", 1, chainBase), chainEvt("c", 2, chainDelta), chainEvt("c", 3, chainBase), chainEvt("c", 4, chainDelta))
			mustDeleteTo(t, j, "c", 2)
		}, []uint64{3, 4}, 4},
		{"NewestBaseDeleted", func(t *testing.T, j journal.Journal) {
			// The highest row, a base, marked deleted: the chain starts
			// from the newest live base below it, Highest stays.
			mustAppend(t, j, chainEvt("c", 1, chainBase), chainEvt("c", 2, chainDelta), chainEvt("c", 3, chainBase))
			mustDeleteTo(t, j, "c", 3)
		}, nil, 3},
		{"GapInChain", func(t *testing.T, j journal.Journal) {
			// A gap is returned as it is: the reader checks the chain.
			mustAppend(t, j, chainEvt("c", 1, chainBase), chainEvt("c", 3, chainDelta))
		}, []uint64{1, 3}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJournal(t)
			tc.setup(t, j)
			c, err := reader(t, j)(t.Context(), "c", chainBase)
			if err != nil {
				t.Fatalf("ReadChain: %v", err)
			}
			if c.Highest != tc.highest {
				t.Fatalf("Highest = %d, want %d", c.Highest, tc.highest)
			}
			var got []uint64
			for _, ev := range c.Events {
				got = append(got, ev.SequenceNr)
				want := chainEvt("c", ev.SequenceNr, ev.Manifest)
				want.WrittenAt = ev.WrittenAt // set by the journal, checked below
				if d := diffEvent(ev, want); d != "" {
					t.Fatalf("event %d: %s", ev.SequenceNr, d)
				}
				if ev.WrittenAt.IsZero() {
					t.Fatalf("event %d: WrittenAt not set", ev.SequenceNr)
				}
			}
			if !equalSeqs(got, tc.want) {
				t.Fatalf("chain = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		j := newJournal(t)
		if _, err := reader(t, j)(t.Context(), "", chainBase); !errors.Is(err, journal.ErrInvalidArgument) {
			t.Fatalf("ReadChain of an empty id = %v, want ErrInvalidArgument", err)
		}
	})
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
