package journaltest

import (
	"errors"
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunAppendNext checks journal.NextAppender. Run calls it for journals that
// implement the interface; it fails the test for one that does not.
func RunAppendNext(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"Sequence", testAppendNextSequence},
		{"AfterDeleteTo", testAppendNextAfterDeleteTo},
		{"Invalid", testAppendNextInvalid},
		{"Concurrent", testAppendNextConcurrent},
	})
}

func nextAppender(t *testing.T, j journal.Journal) journal.NextAppender {
	t.Helper()
	na, ok := j.(journal.NextAppender)
	if !ok {
		t.Fatalf("%T does not implement journal.NextAppender", j)
	}
	return na
}

func wantSuperseded(t *testing.T, err error, pid string, seq uint64) {
	t.Helper()
	wantConflict(t, err, pid, seq)
	var ce *journal.ConflictError
	if errors.As(err, &ce) && !ce.Superseded {
		t.Fatalf("AppendNext conflict %q: Superseded is false", err)
	}
}

func testAppendNextSequence(t *testing.T, j journal.Journal) {
	na := nextAppender(t, j)
	const pid = "next"
	ctx := t.Context()
	if err := na.AppendNext(ctx, evt(pid, 1)); err != nil {
		t.Fatalf("AppendNext(1) on an empty stream: %v", err)
	}
	if err := na.AppendNext(ctx, evt(pid, 2)); err != nil {
		t.Fatalf("AppendNext(2): %v", err)
	}
	before := capture(t, j, pid)
	wantSuperseded(t, na.AppendNext(ctx, intruder(pid, 2)), pid, 2) // taken
	wantSuperseded(t, na.AppendNext(ctx, intruder(pid, 1)), pid, 1) // below
	unchanged(t, j, "refused AppendNext", before)
	// Gaps above the highest are allowed, as with Append.
	if err := na.AppendNext(ctx, evt(pid, 5)); err != nil {
		t.Fatalf("AppendNext(5) over highest 2: %v", err)
	}
	// A free number below the highest is refused: that is the point.
	wantSuperseded(t, na.AppendNext(ctx, intruder(pid, 3)), pid, 3)
	wantStream(t, j, pid, 5, []uint64{1, 2, 5})
	got := wantLast(t, j, pid, 5)
	if string(got.Payload) != string(payloadFor(pid, 5)) {
		t.Fatalf("Last payload %q, want the appended one", got.Payload)
	}
}

func testAppendNextAfterDeleteTo(t *testing.T, j journal.Journal) {
	na := nextAppender(t, j)
	const pid = "next-deleted"
	ctx := t.Context()
	mustAppend(t, j, evts(pid, 1, 10)...)
	mustDeleteTo(t, j, pid, 8)
	// 1..8 are gone, but a stale writer must not reuse them.
	for _, seq := range []uint64{2, 8, 9, 10} {
		wantSuperseded(t, na.AppendNext(ctx, intruder(pid, seq)), pid, seq)
	}
	mustDeleteTo(t, j, pid, 10) // the highest is now only marked deleted
	wantSuperseded(t, na.AppendNext(ctx, intruder(pid, 10)), pid, 10)
	if err := na.AppendNext(ctx, evt(pid, 11)); err != nil {
		t.Fatalf("AppendNext(11) after deleting all: %v", err)
	}
	wantHighest(t, j, pid, 11)
}

func testAppendNextInvalid(t *testing.T, j journal.Journal) {
	na := nextAppender(t, j)
	for _, ev := range []journal.Event{
		{PersistenceID: "", SequenceNr: 1},
		{PersistenceID: "p", SequenceNr: 0},
		{PersistenceID: "p", SequenceNr: journal.MaxSequenceNr + 1},
		{PersistenceID: "p\x00", SequenceNr: 1},
		{PersistenceID: "p", SequenceNr: 1, Manifest: "m\x00"},
	} {
		if err := na.AppendNext(t.Context(), ev); !errors.Is(err, journal.ErrInvalidArgument) {
			t.Fatalf("AppendNext(%q, %d) = %v, want ErrInvalidArgument", ev.PersistenceID, ev.SequenceNr, err)
		}
	}
	wantHighest(t, j, "p", 0)
}

func testAppendNextConcurrent(t *testing.T, j journal.Journal) {
	na := nextAppender(t, j)
	const pid, writers = "next-race", 8
	mustAppend(t, j, evt(pid, 1))
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = na.AppendNext(t.Context(), intruder(pid, 2))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, journal.ErrSequenceConflict):
			t.Fatalf("AppendNext: %v, want nil or a conflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers won sequence nr 2, want exactly 1", won)
	}
	wantHighest(t, j, pid, 2)
}
