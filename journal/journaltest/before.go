package journaltest

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/journal"
)

// RunBeforeReader checks journal.BeforeReader. Run calls it for journals
// that implement the interface; it fails the test for one that does not.
//
// The journal sets WrittenAt, so the cases append events one call at a
// time, a few milliseconds apart, read the times back with Replay, and ask
// about those times and their neighbours: exactly on an event's time (not
// counted: written_at < before), a nanosecond and a microsecond after it,
// before the first event and after the last.
func RunBeforeReader(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"Boundaries", testBeforeBoundaries},
		{"OneBatch", testBeforeOneBatch},
		{"Deleted", testBeforeDeleted},
		{"None", testBeforeNone},
		{"Many", testBeforeMany},
		{"Invalid", testBeforeInvalid},
	})
}

func beforeReader(t *testing.T, j journal.Journal) journal.BeforeReader {
	t.Helper()
	b, ok := j.(journal.BeforeReader)
	if !ok {
		t.Fatalf("%T does not implement journal.BeforeReader", j)
	}
	return b
}

// appendApart appends evt(pid, seq) for seq from..to, one call each, with
// a pause before each, and returns the WrittenAt of each event by
// sequence number as the journal stored it.
func appendApart(t *testing.T, j journal.Journal, pid string, from, to uint64) map[uint64]time.Time {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		time.Sleep(3 * time.Millisecond) // distinct times, whatever the clock's resolution
		mustAppend(t, j, evt(pid, seq))
	}
	at := map[uint64]time.Time{}
	for _, ev := range replay(t, j, pid, from, to, math.MaxUint64) {
		at[ev.SequenceNr] = ev.WrittenAt
	}
	for seq := from; seq <= to; seq++ {
		if at[seq].IsZero() {
			t.Fatalf("event (%q, %d) was read back without WrittenAt", pid, seq)
		}
		if seq > from && !at[seq].After(at[seq-1]) {
			t.Fatalf("events (%q, %d) and (%q, %d), appended 3ms apart, were written at %v and %v",
				pid, seq-1, pid, seq, at[seq-1], at[seq])
		}
	}
	return at
}

func before(t *testing.T, b journal.BeforeReader, pids []string, at time.Time) map[string]uint64 {
	t.Helper()
	got, err := b.HighestSequenceNrsBefore(t.Context(), pids, at)
	if err != nil {
		t.Fatalf("HighestSequenceNrsBefore(%d ids, %v): %v", len(pids), at, err)
	}
	if len(got) != countDistinct(pids) {
		t.Fatalf("HighestSequenceNrsBefore(%q, %v) = %v: want one entry per distinct id", pids, at, got)
	}
	return got
}

func countDistinct(pids []string) int {
	seen := map[string]bool{}
	for _, p := range pids {
		seen[p] = true
	}
	return len(seen)
}

// wantBefore checks one id's answer at each of the cases.
func wantBefore(t *testing.T, b journal.BeforeReader, pid string, cases []beforeCase) {
	t.Helper()
	for _, c := range cases {
		if got := before(t, b, []string{pid}, c.at)[pid]; got != c.want {
			t.Fatalf("HighestSequenceNrsBefore(%q) %s (%v) = %d, want %d", pid, c.name, c.at.UTC().Format(time.RFC3339Nano), got, c.want)
		}
	}
}

type beforeCase struct {
	name string
	at   time.Time
	want uint64
}

func testBeforeBoundaries(t *testing.T, j journal.Journal) {
	b := beforeReader(t, j)
	const pid = "timed"
	at := appendApart(t, j, pid, 1, 3)
	mustAppend(t, j, evts("other", 1, 9)...) // another stream, written later
	wantBefore(t, b, pid, []beforeCase{
		{"before the first event", at[1].Add(-time.Hour), 0},
		{"at the first event's time", at[1], 0},
		{"a nanosecond after the first", at[1].Add(time.Nanosecond), 1},
		{"a microsecond after the first", at[1].Add(time.Microsecond), 1},
		{"at the second event's time", at[2], 1},
		{"a nanosecond before the third", at[3].Add(-time.Nanosecond), 2},
		{"at the third event's time", at[3], 2},
		{"a nanosecond after the last", at[3].Add(time.Nanosecond), 3},
		{"long after the last", at[3].Add(24 * time.Hour), 3},
		{"at MinTime", journal.MinTime, 0},
		{"at MaxTime", journal.MaxTime, 3},
	})
	// The same times in another zone are the same instants.
	zone := time.FixedZone("UTC-7", -7*3600)
	wantBefore(t, b, pid, []beforeCase{{"in another zone", at[2].In(zone).Add(time.Nanosecond), 2}})
	// Together with other ids in one call.
	got := before(t, b, []string{pid, "other", "unknown", pid}, at[3])
	if got[pid] != 2 || got["other"] != 0 || got["unknown"] != 0 {
		t.Fatalf("HighestSequenceNrsBefore(timed, other, unknown) at the third event's time = %v, want timed 2, other 0, unknown 0", got)
	}
}

// Events appended in one call share their WrittenAt (one transaction).
func testBeforeOneBatch(t *testing.T, j journal.Journal) {
	b := beforeReader(t, j)
	const pid = "batch"
	mustAppend(t, j, evts(pid, 1, 3)...)
	events := replay(t, j, pid, 1, 3, math.MaxUint64)
	w := events[0].WrittenAt
	for _, ev := range events {
		if !ev.WrittenAt.Equal(w) {
			t.Fatalf("events of one Append were written at %v and %v: want one time per call", w, ev.WrittenAt)
		}
	}
	wantBefore(t, b, pid, []beforeCase{
		{"at the batch's time", w, 0},
		{"a microsecond after it", w.Add(time.Microsecond), 3},
	})
}

// Rows DeleteTo removed are not known; the row it keeps at the top, marked
// deleted, counts with its event's time.
func testBeforeDeleted(t *testing.T, j journal.Journal) {
	b := beforeReader(t, j)
	const pid = "pruned"
	at := appendApart(t, j, pid, 1, 4)
	after := func(seq uint64) time.Time { return at[seq].Add(time.Microsecond) }
	wantBefore(t, b, pid, []beforeCase{{"after the second, before any delete", after(2), 2}})
	mustDeleteTo(t, j, pid, 2)
	wantBefore(t, b, pid, []beforeCase{
		{"after the second, once 1..2 are deleted", after(2), 0},
		{"after the third", after(3), 3},
	})
	mustDeleteTo(t, j, pid, 4) // the whole stream: row 4 stays, marked deleted
	wantHighest(t, j, pid, 4)
	wantBefore(t, b, pid, []beforeCase{
		{"after the third, once all is deleted", after(3), 0},
		{"after the kept row", after(4), 4},
	})
}

func testBeforeNone(t *testing.T, j journal.Journal) {
	b := beforeReader(t, j)
	for _, pids := range [][]string{nil, {}} {
		got, err := b.HighestSequenceNrsBefore(t.Context(), pids, time.Now())
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("HighestSequenceNrsBefore(%#v) = %#v, %v; want an empty, non-nil map", pids, got, err)
		}
	}
}

func testBeforeMany(t *testing.T, j journal.Journal) {
	b := beforeReader(t, j)
	const n = 2500
	var events []journal.Event
	pids := make([]string, 0, 2*n)
	for i := range n {
		pid := fmt.Sprintf("many-%d", i)
		pids = append(pids, pid, fmt.Sprintf("absent-%d", i))
		events = append(events, evts(pid, 1, uint64(1+i%3))...)
	}
	mustAppend(t, j, events...)
	w := replay(t, j, "many-0", 1, 1, 1)[0].WrittenAt
	atBatch := before(t, b, pids, w)
	afterBatch := before(t, b, pids, w.Add(time.Microsecond))
	for i := range n {
		pid := fmt.Sprintf("many-%d", i)
		if g := atBatch[pid]; g != 0 {
			t.Fatalf("HighestSequenceNrsBefore[%s] at the batch's time = %d, want 0", pid, g)
		}
		if g, w := afterBatch[pid], uint64(1+i%3); g != w {
			t.Fatalf("HighestSequenceNrsBefore[%s] after the batch = %d, want %d", pid, g, w)
		}
		if g := afterBatch[fmt.Sprintf("absent-%d", i)]; g != 0 {
			t.Fatalf("HighestSequenceNrsBefore[absent-%d] = %d, want 0", i, g)
		}
	}
}

func testBeforeInvalid(t *testing.T, j journal.Journal) {
	b := beforeReader(t, j)
	mustAppend(t, j, evt("ok", 1))
	now := time.Now()
	for _, bad := range []string{"", "a\x00b", "\xff", strings.Repeat("x", journal.MaxPersistenceIDLen+1)} {
		got, err := b.HighestSequenceNrsBefore(t.Context(), []string{"ok", bad}, now)
		wantInvalid(t, fmt.Sprintf("HighestSequenceNrsBefore with %q", abbrev([]byte(bad))), err)
		if got != nil {
			t.Fatalf("HighestSequenceNrsBefore failed but returned %v", got)
		}
	}
	for _, at := range []time.Time{
		journal.MinTime.Add(-time.Nanosecond),
		journal.MaxTime.Add(time.Nanosecond),
		time.Date(-5, time.March, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := b.HighestSequenceNrsBefore(t.Context(), []string{"ok"}, at)
		wantInvalid(t, fmt.Sprintf("HighestSequenceNrsBefore at %v", at), err)
		if got != nil {
			t.Fatalf("HighestSequenceNrsBefore failed but returned %v", got)
		}
	}
}
