package journaltest

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/journal"
)

// RunBasics checks reads of an unknown stream, the round trip of every
// field, value semantics, and atomic batches across streams.
func RunBasics(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"UnknownPersistenceID", testUnknownPersistenceID},
		{"RoundTrip", testRoundTrip},
		{"TagsNilAndEmpty", testTagsNilAndEmpty},
		{"CopiesInputAndOutput", testCopies},
		{"AppendNothing", testAppendNothing},
		{"AtomicBatchAcrossPersistenceIDs", testAtomicBatch},
		{"OutOfOrderAndGaps", testOutOfOrderAndGaps},
		{"MaxSequenceNr", testMaxSequenceNr},
	})
}

func testUnknownPersistenceID(t *testing.T, j journal.Journal) {
	const pid = "unknown"
	wantHighest(t, j, pid, 0)
	wantLast(t, j, pid, 0)
	wantSeqs(t, "Replay of an unknown pid", replay(t, j, pid, 0, math.MaxUint64, math.MaxUint64), nil)
	mustDeleteTo(t, j, pid, math.MaxUint64)
	wantHighest(t, j, pid, 0)
	wantLast(t, j, pid, 0)
}

func testRoundTrip(t *testing.T, j journal.Journal) {
	const pid = "round-trip/ünïcødé ✓ 'quoted' \"double\""
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i) // NUL, invalid UTF-8, every byte
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	longAgo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	in := []journal.Event{{
		PersistenceID: pid,
		SequenceNr:    1,
		Payload:       binary,
		Manifest:      "manifest/ü ✓",
		WriterUUID:    "5f0c6c2e-8d6a-4f7e-9a41-2b1e0d3c4b5a",
		// Text that array literals and tag tables get wrong.
		Tags:      []string{"plain", "a,b", "{braces}", `"quoted"`, `back\slash`, "NULL", "", " spaced ", "ü✓", "dup", "dup"},
		Deleted:   true,    // ignored on Append
		WrittenAt: longAgo, // ignored on Append
	}, {
		PersistenceID: pid,
		SequenceNr:    2,
		Payload:       []byte{}, // empty
		Tags:          nil,
	}, {
		PersistenceID: pid,
		SequenceNr:    3,
		Payload:       nil, // nil reads back as empty
		Tags:          []string{},
	}, {
		PersistenceID: pid,
		SequenceNr:    4,
		Payload:       large,
		Manifest:      "large",
		WriterUUID:    "w",
		Tags:          []string{"one"},
	}}

	before := time.Now()
	mustAppend(t, j, in...)
	after := time.Now()

	got := replay(t, j, pid, 1, math.MaxUint64, math.MaxUint64)
	wantSeqs(t, "Replay", got, []uint64{1, 2, 3, 4})
	// The clocks of the journal and of the test may differ a little.
	earliest, latest := before.Add(-time.Minute), after.Add(time.Minute)
	for i, ev := range got {
		if ev.WrittenAt.IsZero() {
			t.Fatalf("event %d: WrittenAt is zero", ev.SequenceNr)
		}
		if ev.WrittenAt.Before(earliest) || ev.WrittenAt.After(latest) {
			t.Fatalf("event %d: WrittenAt %v is not close to the time of the write (%v .. %v)", ev.SequenceNr, ev.WrittenAt, before, after)
		}
		want := in[i]
		want.Deleted = false
		want.WrittenAt = ev.WrittenAt
		if d := diffEvent(ev, want); d != "" {
			t.Fatalf("event %d read back differently: %s", ev.SequenceNr, d)
		}
	}

	last := wantLast(t, j, pid, 4)
	if d := diffEvent(last, got[3]); d != "" {
		t.Fatalf("Last differs from the same event read by Replay: %s", d)
	}
	wantHighest(t, j, pid, 4)

	// Reading again gives the same events, WrittenAt included.
	again := replay(t, j, pid, 1, math.MaxUint64, math.MaxUint64)
	for i := range again {
		if d := diffEvent(again[i], got[i]); d != "" {
			t.Fatalf("event %d differs on the second read: %s", again[i].SequenceNr, d)
		}
	}
}

func testTagsNilAndEmpty(t *testing.T, j journal.Journal) {
	const pid = "tags"
	mustAppend(t, j,
		journal.Event{PersistenceID: pid, SequenceNr: 1, Payload: []byte("x"), Tags: nil},
		journal.Event{PersistenceID: pid, SequenceNr: 2, Payload: []byte("x"), Tags: []string{}},
		journal.Event{PersistenceID: pid, SequenceNr: 3, Payload: []byte("x"), Tags: []string{"b", "a"}},
	)
	got := replay(t, j, pid, 1, 3, math.MaxUint64)
	wantSeqs(t, "Replay", got, []uint64{1, 2, 3})
	for _, ev := range got[:2] {
		if len(ev.Tags) != 0 {
			t.Fatalf("event %d: Tags = %q, want none", ev.SequenceNr, ev.Tags)
		}
	}
	if tags := got[2].Tags; len(tags) != 2 || tags[0] != "b" || tags[1] != "a" {
		t.Fatalf("event 3: Tags = %q, want [b a] in that order", tags)
	}
}

func testCopies(t *testing.T, j journal.Journal) {
	const pid = "copies"
	payload := []byte("original")
	tags := []string{"original"}
	mustAppend(t, j, journal.Event{PersistenceID: pid, SequenceNr: 1, Payload: payload, Tags: tags})

	// The caller may reuse its buffers once Append has returned.
	copy(payload, "CHANGED!")
	tags[0] = "changed"
	check := func(when string) journal.Event {
		t.Helper()
		got := replay(t, j, pid, 1, 1, 1)
		wantSeqs(t, when, got, []uint64{1})
		ev := got[0]
		if string(ev.Payload) != "original" || len(ev.Tags) != 1 || ev.Tags[0] != "original" {
			t.Fatalf("%s: read payload %q and tags %q, want \"original\" and [original]", when, ev.Payload, ev.Tags)
		}
		return ev
	}
	ev := check("after changing the appended buffers")

	// Changing what was read changes nothing stored.
	copy(ev.Payload, "CHANGED!")
	ev.Tags[0] = "changed"
	check("after changing an event returned by Replay")
	last := wantLast(t, j, pid, 1)
	copy(last.Payload, "CHANGED!")
	last.Tags[0] = "changed"
	check("after changing an event returned by Last")
}

func testAppendNothing(t *testing.T, j journal.Journal) {
	if err := j.Append(t.Context()); err != nil {
		t.Fatalf("Append() = %v, want nil", err)
	}
	if err := j.Append(t.Context(), []journal.Event{}...); err != nil {
		t.Fatalf("Append(empty slice...) = %v, want nil", err)
	}
	wantHighest(t, j, "nothing", 0)
}

func testAtomicBatch(t *testing.T, j journal.Journal) {
	mustAppend(t, j,
		evt("a", 1), evt("b", 1), evt("a", 2), evt("c", 1), evt("b", 2), evt("a", 3),
	)
	wantStream(t, j, "a", 3, []uint64{1, 2, 3})
	wantStream(t, j, "b", 2, []uint64{1, 2})
	wantStream(t, j, "c", 1, []uint64{1})

	mustAppend(t, j, evt("b", 3), evt("a", 4), evt("d", 1))
	wantStream(t, j, "a", 4, []uint64{1, 2, 3, 4})
	wantStream(t, j, "b", 3, []uint64{1, 2, 3})
	wantStream(t, j, "c", 1, []uint64{1})
	wantStream(t, j, "d", 1, []uint64{1})
}

// The journal checks uniqueness only: sequence numbers need not be
// contiguous nor appended in order (the store, not the journal, decides
// which number comes next).
func testOutOfOrderAndGaps(t *testing.T, j journal.Journal) {
	const pid = "gaps"
	mustAppend(t, j, evt(pid, 3), evt(pid, 1), evt(pid, 2))
	wantStream(t, j, pid, 3, []uint64{1, 2, 3})
	mustAppend(t, j, evt(pid, 10))
	mustAppend(t, j, evt(pid, 7), evt(pid, 5))
	wantStream(t, j, pid, 10, []uint64{1, 2, 3, 5, 7, 10})
	wantSeqs(t, "Replay(4, 9)", replay(t, j, pid, 4, 9, math.MaxUint64), []uint64{5, 7})
}

func testMaxSequenceNr(t *testing.T, j journal.Journal) {
	const pid = "max"
	const top = journal.MaxSequenceNr
	mustAppend(t, j, evt(pid, top), evt(pid, top-1))
	wantStream(t, j, pid, top, []uint64{top - 1, top})
	wantSeqs(t, "Replay(MaxInt64-1, MaxUint64)", replay(t, j, pid, top-1, math.MaxUint64, math.MaxUint64), []uint64{top - 1, top})
	wantSeqs(t, "Replay(MaxInt64-1, MaxInt64-1)", replay(t, j, pid, top-1, top-1, math.MaxUint64), []uint64{top - 1})
	mustDeleteTo(t, j, pid, math.MaxUint64)
	wantStream(t, j, pid, top, nil)
}
