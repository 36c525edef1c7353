package journaltest

import (
	"errors"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunConflicts checks that a duplicate (PersistenceID, SequenceNr), against
// a stored row or within the batch, fails the whole Append with a
// *journal.ConflictError naming it, and writes nothing.
func RunConflicts(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"SingleEvent", testConflictSingleEvent},
		{"ExistingRowInBatch", testConflictExistingRowInBatch},
		{"DuplicateWithinBatch", testConflictWithinBatch},
		{"DuplicateWithinBatchOfExistingStream", testConflictWithinBatchExisting},
		{"RepeatedConflictsThenAppend", testRepeatedConflicts},
	})
}

// wantConflict checks that err reports a conflict on exactly (pid, seq).
func wantConflict(t *testing.T, err error, pid string, seq uint64) {
	t.Helper()
	if err == nil {
		t.Fatalf("Append succeeded, want a conflict on (%q, %d)", pid, seq)
	}
	if !errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("Append error %q (%T) does not match journal.ErrSequenceConflict", err, err)
	}
	if errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("conflict error %q also matches journal.ErrInvalidArgument", err)
	}
	var ce *journal.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Append error %q (%T) is not a *journal.ConflictError", err, err)
	}
	if ce.PersistenceID != pid || ce.SequenceNr != seq {
		t.Fatalf("ConflictError names (%q, %d), want (%q, %d)", ce.PersistenceID, ce.SequenceNr, pid, seq)
	}
}

func testConflictSingleEvent(t *testing.T, j journal.Journal) {
	const pid = "single"
	mustAppend(t, j, evts(pid, 1, 2)...)
	before := capture(t, j, pid)
	wantConflict(t, j.Append(t.Context(), intruder(pid, 2)), pid, 2)
	wantConflict(t, j.Append(t.Context(), intruder(pid, 1)), pid, 1)
	unchanged(t, j, "a conflicting Append", before)
	wantStream(t, j, pid, 2, []uint64{1, 2})
}

func testConflictExistingRowInBatch(t *testing.T, j journal.Journal) {
	mustAppend(t, j, evts("a", 1, 3)...)
	mustAppend(t, j, evt("b", 1))
	before := capture(t, j, "a", "b", "c", "d")

	// One event of the batch exists; every other one is new.
	err := j.Append(t.Context(), evt("b", 2), evt("c", 1), intruder("a", 3), evt("a", 4), evt("d", 1))
	wantConflict(t, err, "a", 3)
	unchanged(t, j, "a batch with one existing row", before)

	// The same batch without the duplicate goes through.
	mustAppend(t, j, evt("b", 2), evt("c", 1), evt("a", 4), evt("d", 1))
	wantStream(t, j, "a", 4, []uint64{1, 2, 3, 4})
	wantStream(t, j, "b", 2, []uint64{1, 2})
	wantStream(t, j, "c", 1, []uint64{1})
	wantStream(t, j, "d", 1, []uint64{1})
}

func testConflictWithinBatch(t *testing.T, j journal.Journal) {
	before := capture(t, j, "x", "y")
	err := j.Append(t.Context(), evt("x", 1), evt("y", 1), evt("y", 2), intruder("x", 1))
	wantConflict(t, err, "x", 1)
	unchanged(t, j, "a batch with a duplicate", before)
	wantStream(t, j, "x", 0, nil)
	wantStream(t, j, "y", 0, nil)
}

func testConflictWithinBatchExisting(t *testing.T, j journal.Journal) {
	mustAppend(t, j, evt("z", 1))
	mustAppend(t, j, evt("w", 1))
	before := capture(t, j, "z", "w")
	err := j.Append(t.Context(), evt("w", 2), evt("z", 2), evt("z", 3), intruder("z", 2))
	wantConflict(t, err, "z", 2)
	unchanged(t, j, "a batch with a duplicate", before)
}

// A failed Append must release what it holds (a transaction, a
// connection): many of them in a row, then a good one.
func testRepeatedConflicts(t *testing.T, j journal.Journal) {
	const pid = "repeated"
	mustAppend(t, j, evt(pid, 1))
	for range 50 {
		wantConflict(t, j.Append(t.Context(), evt(pid, 2), intruder(pid, 1)), pid, 1)
	}
	mustAppend(t, j, evt(pid, 2))
	wantStream(t, j, pid, 2, []uint64{1, 2})
}
