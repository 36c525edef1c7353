package journaltest

import (
	"errors"
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunSuccessorAppender checks journal.SuccessorAppender. Run calls it for
// journals that implement the interface; it fails the test for one that
// does not.
func RunSuccessorAppender(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"FollowsNewest", testSuccessorFollows},
		{"Ahead", testSuccessorAhead},
		{"BaseMissing", testSuccessorBaseMissing},
		{"Invalid", testSuccessorInvalid},
		{"Concurrent", testSuccessorConcurrent},
	})
}

func successorAppender(t *testing.T, j journal.Journal) journal.SuccessorAppender {
	t.Helper()
	sa, ok := j.(journal.SuccessorAppender)
	if !ok {
		t.Fatalf("%T does not implement journal.SuccessorAppender", j)
	}
	return sa
}

func wantBaseMissing(t *testing.T, err error, pid string, seq, highest uint64) {
	t.Helper()
	var be *journal.BaseMissingError
	if !errors.Is(err, journal.ErrBaseMissing) || !errors.As(err, &be) || errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("AppendSuccessor(%q, %d) = %v, want a *BaseMissingError (not a conflict)", pid, seq, err)
	}
	if be.PersistenceID != pid || be.SequenceNr != seq || be.Highest != highest {
		t.Fatalf("BaseMissingError = %+v, want %q, %d, highest %d", be, pid, seq, highest)
	}
}

func testSuccessorFollows(t *testing.T, j journal.Journal) {
	sa := successorAppender(t, j)
	mustAppend(t, j, evt("s", 1))
	for seq := uint64(2); seq <= 4; seq++ {
		if err := sa.AppendSuccessor(t.Context(), evt("s", seq)); err != nil {
			t.Fatalf("AppendSuccessor(%d): %v", seq, err)
		}
	}
	wantLast(t, j, "s", 4)
	// Below the highest, deleted rows do not matter: the newest is live.
	mustDeleteTo(t, j, "s", 3)
	if err := sa.AppendSuccessor(t.Context(), evt("s", 5)); err != nil {
		t.Fatalf("AppendSuccessor(5) after DeleteTo(3): %v", err)
	}
}

func testSuccessorAhead(t *testing.T, j journal.Journal) {
	sa := successorAppender(t, j)
	mustAppend(t, j, evts("s", 1, 3)...)
	for _, seq := range []uint64{2, 3} {
		wantSuperseded(t, sa.AppendSuccessor(t.Context(), intruder("s", seq)), "s", seq)
	}
	wantLast(t, j, "s", 3)
}

func testSuccessorBaseMissing(t *testing.T, j journal.Journal) {
	ctx := t.Context()
	sa := successorAppender(t, j)
	// An empty stream has no event to follow.
	wantBaseMissing(t, sa.AppendSuccessor(ctx, evt("empty", 1)), "empty", 1, 0)
	wantBaseMissing(t, sa.AppendSuccessor(ctx, evt("empty", 3)), "empty", 3, 0)
	// A gap: the stream ends two below.
	mustAppend(t, j, evts("gap", 1, 2)...)
	wantBaseMissing(t, sa.AppendSuccessor(ctx, evt("gap", 4)), "gap", 4, 2)
	// The event before is the highest, but deleted.
	mustAppend(t, j, evts("del", 1, 2)...)
	mustDeleteTo(t, j, "del", 2)
	wantBaseMissing(t, sa.AppendSuccessor(ctx, evt("del", 3)), "del", 3, 2)
	for _, pid := range []string{"empty", "gap"} {
		if _, ok, err := j.Last(ctx, pid); err != nil || (pid == "empty" && ok) {
			t.Fatalf("Last(%q) = %v, %v: a refused append wrote", pid, ok, err)
		}
	}
	wantLast(t, j, "gap", 2)
}

func testSuccessorInvalid(t *testing.T, j journal.Journal) {
	sa := successorAppender(t, j)
	if err := sa.AppendSuccessor(t.Context(), journal.Event{SequenceNr: 2}); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("AppendSuccessor of an empty id = %v, want ErrInvalidArgument", err)
	}
}

// Writers racing for the next number: one wins, the others are refused as
// conflicts, never as a missing base, and never both written.
func testSuccessorConcurrent(t *testing.T, j journal.Journal) {
	sa := successorAppender(t, j)
	mustAppend(t, j, evt("race", 1))
	for seq := uint64(2); seq <= 6; seq++ {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = sa.AppendSuccessor(t.Context(), evt("race", seq)) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, journal.ErrSequenceConflict):
			default:
				t.Fatalf("seq %d: %v", seq, err)
			}
		}
		if won != 1 {
			t.Fatalf("seq %d: %d writers won, want 1", seq, won)
		}
	}
	wantLast(t, j, "race", 6)
}
