package journaltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunContext checks that every operation honours its context: a cancelled
// context fails each method with an error matching context.Canceled and
// writes nothing, and cancelling during Replay ends the stream with that
// error before the next event.
func RunContext(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"CancelledBeforeEachOperation", testCancelled},
		{"CancelledDuringReplay", testCancelledDuringReplay},
	})
}

func wantCanceled(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%s with a cancelled context: error %v (%T), want one matching context.Canceled", what, err, err)
	}
}

// wantCanceledReplay checks that elems is no event and then exactly one
// error matching context.Canceled.
func wantCanceledReplay(t *testing.T, what string, elems []element) {
	t.Helper()
	if len(elems) != 1 {
		t.Fatalf("%s yielded %d elements, want exactly 1 (the error)", what, len(elems))
	}
	wantCanceled(t, what, elems[0].err)
}

func testCancelled(t *testing.T, j journal.Journal) {
	const pid = "ctx"
	mustAppend(t, j, evts(pid, 1, 3)...)
	before := capture(t, j, pid, "new")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wantCanceled(t, "Append", j.Append(ctx, evt(pid, 4), evt("new", 1)))
	wantCanceledReplay(t, "Replay", drain(j.Replay(ctx, pid, 1, math.MaxUint64, math.MaxUint64)))
	_, err := j.HighestSequenceNr(ctx, pid)
	wantCanceled(t, "HighestSequenceNr", err)
	wantCanceled(t, "DeleteTo", j.DeleteTo(ctx, pid, math.MaxUint64))
	_, ok, err := j.Last(ctx, pid)
	wantCanceled(t, "Last", err)
	if ok {
		t.Fatalf("Last with a cancelled context returned ok = true")
	}
	unchanged(t, j, "operations with a cancelled context", before)

	// The journal works as before with a live context.
	mustAppend(t, j, evt(pid, 4), evt("new", 1))
	wantStream(t, j, pid, 4, seqRange(1, 4))
	wantStream(t, j, "new", 1, []uint64{1})
}

func testCancelledDuringReplay(t *testing.T, j journal.Journal) {
	const pid = "ctx-replay"
	mustAppend(t, j, evts(pid, 1, 100)...)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		seen  []uint64
		errs  []error
		after int // events yielded after cancel
	)
	for ev, err := range j.Replay(ctx, pid, 1, math.MaxUint64, math.MaxUint64) {
		switch {
		case err != nil:
			errs = append(errs, err)
		case ctx.Err() != nil:
			after++
		default:
			seen = append(seen, ev.SequenceNr)
			if len(seen) == 10 {
				cancel()
			}
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(seqRange(1, 10)) {
		t.Fatalf("Replay yielded %v before the cancel, want 1..10", seen)
	}
	if after > 0 {
		t.Fatalf("Replay yielded %d more events after its context was cancelled, want none", after)
	}
	if len(errs) != 1 {
		t.Fatalf("Replay yielded %d errors after its context was cancelled, want exactly 1: %v", len(errs), errs)
	}
	wantCanceled(t, "Replay cancelled mid-stream", errs[0])

	// Whatever the cancelled Replay held is released.
	live := t.Context()
	within(t, "20 rounds of operations after a cancelled Replay", func() error {
		for i := range uint64(20) {
			events, err := Collect(j.Replay(live, pid, 1, math.MaxUint64, math.MaxUint64))
			if err != nil || len(events) != 100 {
				return fmt.Errorf("round %d: Replay yielded %d events, %v; want 100", i, len(events), err)
			}
			if err := j.Append(live, evt("after-cancel", i+1)); err != nil {
				return fmt.Errorf("round %d: Append: %w", i, err)
			}
		}
		return nil
	})
	wantStream(t, j, "after-cancel", 20, seqRange(1, 20))
}
