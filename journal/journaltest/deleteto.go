package journaltest

import (
	"fmt"
	"math"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunDeleteTo checks that DeleteTo removes a prefix of a stream and never
// lowers HighestSequenceNr: the highest row, once reached, is kept as a
// deleted row that Replay and Last skip and Append still conflicts with.
func RunDeleteTo(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"BelowHighest", testDeleteBelowHighest},
		{"AtHighest", testDeleteAtHighest},
		{"AboveHighest", testDeleteAboveHighest},
		{"Idempotent", testDeleteIdempotent},
		{"Zero", testDeleteZero},
		{"UnknownPersistenceID", testDeleteUnknown},
	})
}

func testDeleteBelowHighest(t *testing.T, j journal.Journal) {
	const pid = "below"
	mustAppend(t, j, evts(pid, 1, 10)...)
	mustDeleteTo(t, j, pid, 4)
	wantStream(t, j, pid, 10, seqRange(5, 10))
	wantSeqs(t, "Replay(1, 4) after DeleteTo(4)", replay(t, j, pid, 1, 4, math.MaxUint64), nil)
	wantSeqs(t, "Replay(1, 6, max 1) after DeleteTo(4)", replay(t, j, pid, 1, 6, 1), []uint64{5})

	// Deleting below what is already gone changes nothing.
	mustDeleteTo(t, j, pid, 2)
	mustDeleteTo(t, j, pid, 4)
	wantStream(t, j, pid, 10, seqRange(5, 10))

	// Up to just below the highest: the highest stays visible.
	mustDeleteTo(t, j, pid, 9)
	wantStream(t, j, pid, 10, []uint64{10})
	if ev := wantLast(t, j, pid, 10); ev.Deleted {
		t.Fatalf("Last returned a Deleted event")
	}

	// The highest row is still there.
	wantConflict(t, j.Append(t.Context(), intruder(pid, 10)), pid, 10)
}

func testDeleteAtHighest(t *testing.T, j journal.Journal) {
	const pid = "at"
	mustAppend(t, j, evts(pid, 1, 5)...)
	mustDeleteTo(t, j, pid, 5)
	wantStream(t, j, pid, 5, nil)
	wantSeqs(t, "Replay(5, 5) after DeleteTo(5)", replay(t, j, pid, 5, 5, math.MaxUint64), nil)

	// The kept row still guards its sequence number.
	wantConflict(t, j.Append(t.Context(), intruder(pid, 5)), pid, 5)
	wantStream(t, j, pid, 5, nil)

	// Appending continues at highest + 1.
	mustAppend(t, j, evt(pid, 6))
	wantStream(t, j, pid, 6, []uint64{6})

	// Deleting up to the deleted row removes it and keeps the rest.
	mustDeleteTo(t, j, pid, 5)
	wantStream(t, j, pid, 6, []uint64{6})

	mustDeleteTo(t, j, pid, 6)
	wantStream(t, j, pid, 6, nil)
	wantConflict(t, j.Append(t.Context(), intruder(pid, 6)), pid, 6)
	mustAppend(t, j, evt(pid, 7), evt(pid, 8))
	wantStream(t, j, pid, 8, []uint64{7, 8})
}

func testDeleteAboveHighest(t *testing.T, j journal.Journal) {
	for _, to := range []uint64{6, 100, journal.MaxSequenceNr, journal.MaxSequenceNr + 1, math.MaxUint64} {
		pid := fmt.Sprintf("above-%d", to)
		mustAppend(t, j, evts(pid, 1, 5)...)
		mustDeleteTo(t, j, pid, to)
		wantStream(t, j, pid, 5, nil)
		wantConflict(t, j.Append(t.Context(), intruder(pid, 5)), pid, 5)
		mustAppend(t, j, evt(pid, 6))
		wantStream(t, j, pid, 6, []uint64{6})
	}
}

func testDeleteIdempotent(t *testing.T, j journal.Journal) {
	const pid = "idempotent"
	mustAppend(t, j, evts(pid, 1, 5)...)
	for _, to := range []uint64{math.MaxUint64, math.MaxUint64, 5, 3, 0, 100} {
		mustDeleteTo(t, j, pid, to)
		wantStream(t, j, pid, 5, nil)
	}

	const single = "single"
	mustAppend(t, j, evt(single, 1))
	mustDeleteTo(t, j, single, 1)
	mustDeleteTo(t, j, single, 1)
	wantStream(t, j, single, 1, nil)
}

func testDeleteZero(t *testing.T, j journal.Journal) {
	const pid = "zero"
	mustAppend(t, j, evts(pid, 1, 3)...)
	before := capture(t, j, pid)
	mustDeleteTo(t, j, pid, 0)
	unchanged(t, j, "DeleteTo(0)", before)
	wantStream(t, j, pid, 3, seqRange(1, 3))
}

func testDeleteUnknown(t *testing.T, j journal.Journal) {
	mustAppend(t, j, evts("known", 1, 3)...)
	before := capture(t, j, "known")
	for _, to := range []uint64{0, 1, math.MaxUint64} {
		mustDeleteTo(t, j, "unknown", to)
	}
	wantStream(t, j, "unknown", 0, nil)
	unchanged(t, j, "DeleteTo of an unknown pid", before)
}
