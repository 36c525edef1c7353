package journaltest

import (
	"errors"
	"math"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunValidation checks that invalid input fails with an error matching
// journal.ErrInvalidArgument, on every method, and writes nothing.
func RunValidation(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"InvalidEvents", testInvalidEvents},
		{"InvalidPersistenceIDOnEveryMethod", testInvalidPersistenceID},
	})
}

// wantInvalid checks that err reports invalid input.
func wantInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error matching journal.ErrInvalidArgument", what)
	}
	if !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("%s: error %q (%T) does not match journal.ErrInvalidArgument", what, err, err)
	}
	if errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("%s: error %q also matches journal.ErrSequenceConflict", what, err)
	}
	var ie *journal.InvalidArgumentError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: error %q (%T) is not a *journal.InvalidArgumentError", what, err, err)
	}
}

func testInvalidEvents(t *testing.T, j journal.Journal) {
	const ok = "ok"
	mustAppend(t, j, evt(ok, 1))
	with := func(f func(*journal.Event)) journal.Event {
		ev := evt("valid-pid", 1)
		f(&ev)
		return ev
	}
	cases := []struct {
		name string
		ev   journal.Event
	}{
		{"EmptyPersistenceID", with(func(ev *journal.Event) { ev.PersistenceID = "" })},
		{"NULInPersistenceID", with(func(ev *journal.Event) { ev.PersistenceID = "a\x00b" })},
		{"InvalidUTF8PersistenceID", with(func(ev *journal.Event) { ev.PersistenceID = "a\xff\xfe" })},
		{"SequenceNrZero", with(func(ev *journal.Event) { ev.SequenceNr = 0 })},
		{"SequenceNrAboveMaxInt64", with(func(ev *journal.Event) { ev.SequenceNr = math.MaxInt64 + 1 })},
		{"SequenceNrMaxUint64", with(func(ev *journal.Event) { ev.SequenceNr = math.MaxUint64 })},
		{"NULInManifest", with(func(ev *journal.Event) { ev.Manifest = "m\x00" })},
		{"InvalidUTF8Manifest", with(func(ev *journal.Event) { ev.Manifest = "\xc3\x28" })},
		{"NULInWriterUUID", with(func(ev *journal.Event) { ev.WriterUUID = "\x00" })},
		{"InvalidUTF8WriterUUID", with(func(ev *journal.Event) { ev.WriterUUID = "\x80" })},
		{"NULInTag", with(func(ev *journal.Event) { ev.Tags = []string{"fine", "t\x00ag"} })},
		{"InvalidUTF8Tag", with(func(ev *journal.Event) { ev.Tags = []string{"\xed\xa0\x80"} })}, // a surrogate
	}
	for _, tc := range cases {
		before := capture(t, j, ok, "valid-pid")
		wantInvalid(t, tc.name+": Append(bad)", j.Append(t.Context(), tc.ev))
		wantInvalid(t, tc.name+": Append(good, bad)", j.Append(t.Context(), evt(ok, 2), evt("valid-pid", 2), tc.ev))
		// Validation comes before the uniqueness check.
		wantInvalid(t, tc.name+": Append(duplicate, bad)", j.Append(t.Context(), intruder(ok, 1), tc.ev))
		unchanged(t, j, tc.name+": an Append with an invalid event", before)
	}
	wantStream(t, j, ok, 1, []uint64{1})
	wantStream(t, j, "valid-pid", 0, nil)
}

func testInvalidPersistenceID(t *testing.T, j journal.Journal) {
	mustAppend(t, j, evt("a", 1))
	for _, pid := range []string{"", "a\x00", "a\xff"} {
		_, err := j.HighestSequenceNr(t.Context(), pid)
		wantInvalid(t, "HighestSequenceNr", err)
		_, ok, err := j.Last(t.Context(), pid)
		wantInvalid(t, "Last", err)
		if ok {
			t.Fatalf("Last(%q) returned ok = true with an error", pid)
		}
		wantInvalid(t, "DeleteTo", j.DeleteTo(t.Context(), pid, math.MaxUint64))

		got := drain(j.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64))
		if len(got) != 1 {
			t.Fatalf("Replay(%q) yielded %d elements, want exactly 1 (the error)", pid, len(got))
		}
		wantInvalid(t, "Replay", got[0].err)
		if got[0].ev.SequenceNr != 0 || got[0].ev.PersistenceID != "" {
			t.Fatalf("Replay(%q) yielded event %d with its error", pid, got[0].ev.SequenceNr)
		}
	}
	wantStream(t, j, "a", 1, []uint64{1})
}
