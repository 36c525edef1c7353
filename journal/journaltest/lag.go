package journaltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/journal"
)

// RunLagReader checks journal.LagReader. Run calls it for journals that
// implement the interface; it fails the test for one that does not. Each
// case also checks that journal.ReadStreamLags through the plain Journal
// methods (the fallback of a journal without StreamLags) agrees.
func RunLagReader(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"AtHead", testLagAtHead},
		{"Behind", testLagBehind},
		{"AheadAndUnknown", testLagAhead},
		{"Deleted", testLagDeleted},
		{"Many", testLagMany},
		{"None", testLagNone},
		{"Invalid", testLagInvalid},
		{"Cancelled", testLagCancelled},
	})
}

func lagReader(t *testing.T, j journal.Journal) journal.LagReader {
	t.Helper()
	l, ok := j.(journal.LagReader)
	if !ok {
		t.Fatalf("%T does not implement journal.LagReader", j)
	}
	return l
}

// plainJournal hides every optional interface of a journal, so that
// ReadStreamLags and ReadChain take their fallbacks.
type plainJournal struct{ journal.Journal }

// lags reads the positions through StreamLags and through the fallback,
// checks that both agree, and returns the result by persistence id.
func lags(t *testing.T, j journal.Journal, positions []journal.Position) map[string]journal.StreamLag {
	t.Helper()
	byID := streamLags(t, j, positions)
	plain, err := journal.ReadStreamLags(t.Context(), plainJournal{j}, positions)
	if err != nil {
		t.Fatalf("ReadStreamLags through the plain journal: %v", err)
	}
	if len(plain) != len(byID) {
		t.Fatalf("ReadStreamLags through the plain journal reports %d streams, StreamLags %d", len(plain), len(byID))
	}
	for _, p := range plain {
		if d := diffLag(byID[p.PersistenceID], p); d != "" {
			t.Fatalf("StreamLags and the plain journal's read differ on %q: %s", p.PersistenceID, d)
		}
	}
	return byID
}

// streamLags reads the positions through StreamLags alone.
func streamLags(t *testing.T, j journal.Journal, positions []journal.Position) map[string]journal.StreamLag {
	t.Helper()
	got, err := lagReader(t, j).StreamLags(t.Context(), positions)
	if err != nil {
		t.Fatalf("StreamLags(%d positions): %v", len(positions), err)
	}
	byID := make(map[string]journal.StreamLag, len(got))
	for _, l := range got {
		if _, dup := byID[l.PersistenceID]; dup {
			t.Fatalf("StreamLags reports %q twice", l.PersistenceID)
		}
		byID[l.PersistenceID] = l
	}
	return byID
}

func diffLag(got, want journal.StreamLag) string {
	var d []string
	if got.PersistenceID != want.PersistenceID {
		d = append(d, fmt.Sprintf("PersistenceID %q, want %q", got.PersistenceID, want.PersistenceID))
	}
	if got.Offset != want.Offset {
		d = append(d, fmt.Sprintf("Offset %d, want %d", got.Offset, want.Offset))
	}
	if got.Highest != want.Highest {
		d = append(d, fmt.Sprintf("Highest %d, want %d", got.Highest, want.Highest))
	}
	if !got.NextWrittenAt.Equal(want.NextWrittenAt) {
		d = append(d, fmt.Sprintf("NextWrittenAt %v, want %v", got.NextWrittenAt, want.NextWrittenAt))
	}
	return strings.Join(d, "; ")
}

func wantLag(t *testing.T, got map[string]journal.StreamLag, want journal.StreamLag) {
	t.Helper()
	g, ok := got[want.PersistenceID]
	if !ok {
		t.Fatalf("StreamLags reports nothing for %q, want %+v", want.PersistenceID, want)
	}
	if d := diffLag(g, want); d != "" {
		t.Fatalf("StreamLags[%q]: %s", want.PersistenceID, d)
	}
}

// writtenAt returns the WrittenAt of the live event (pid, seq), as Replay
// reads it.
func writtenAt(t *testing.T, j journal.Journal, pid string, seq uint64) time.Time {
	t.Helper()
	events := replay(t, j, pid, seq, seq, 1)
	if len(events) != 1 {
		t.Fatalf("event (%q, %d) not found", pid, seq)
	}
	return events[0].WrittenAt
}

func testLagAtHead(t *testing.T, j journal.Journal) {
	appendStreams(t, j, 3, "a", "b")
	got := lags(t, j, []journal.Position{pos("a", 3), pos("b", 3), pos("never", 0)})
	if len(got) != 0 {
		t.Fatalf("StreamLags of positions at their heads = %+v, want nothing", got)
	}
}

func testLagBehind(t *testing.T, j journal.Journal) {
	// Three appends, so that the events have different times where the
	// journal's clock moves between calls: the reported time must be the
	// first event's above the offset, not any other's.
	mustAppend(t, j, evts("s", 1, 2)...)
	time.Sleep(2 * time.Millisecond)
	mustAppend(t, j, evt("s", 3))
	time.Sleep(2 * time.Millisecond)
	mustAppend(t, j, evts("s", 4, 5)...)
	mustAppend(t, j, evts("other", 1, 1)...)
	got := lags(t, j, []journal.Position{pos("s", 2), pos("other", 0)})
	wantLag(t, got, journal.StreamLag{PersistenceID: "s", Offset: 2, Highest: 5, NextWrittenAt: writtenAt(t, j, "s", 3)})
	wantLag(t, got, journal.StreamLag{PersistenceID: "other", Offset: 0, Highest: 1, NextWrittenAt: writtenAt(t, j, "other", 1)})
	if l := got["s"]; l.Lag() != 3 {
		t.Fatalf("Lag() = %d, want 3", l.Lag())
	}
	if at := got["s"].NextWrittenAt; at.IsZero() || at.After(time.Now().Add(time.Minute)) {
		t.Fatalf("NextWrittenAt = %v, want the time of the append", at)
	}
}

func testLagAhead(t *testing.T, j journal.Journal) {
	appendStreams(t, j, 2, "short")
	got := lags(t, j, []journal.Position{pos("short", 5), pos("unknown", 4), pos("max", math.MaxUint64)})
	wantLag(t, got, journal.StreamLag{PersistenceID: "short", Offset: 5, Highest: 2})
	wantLag(t, got, journal.StreamLag{PersistenceID: "unknown", Offset: 4})
	wantLag(t, got, journal.StreamLag{PersistenceID: "max", Offset: math.MaxUint64})
	if l := got["short"]; l.Lag() != -3 {
		t.Fatalf("Lag() of an offset past the end = %d, want -3", l.Lag())
	}
	if l := got["max"]; l.Lag() != -math.MaxInt64 {
		t.Fatalf("Lag() of offset MaxUint64 on an empty stream = %d, want -MaxInt64 (saturated)", l.Lag())
	}
}

func testLagDeleted(t *testing.T, j journal.Journal) {
	appendStreams(t, j, 5, "partly", "wholly")
	mustDeleteTo(t, j, "partly", 3)
	mustDeleteTo(t, j, "wholly", 5) // the highest row stays, deleted
	got := lags(t, j, []journal.Position{pos("partly", 1), pos("wholly", 2)})
	// Rows 2 and 3 are gone: the first event left above 1 is 4.
	wantLag(t, got, journal.StreamLag{PersistenceID: "partly", Offset: 1, Highest: 5, NextWrittenAt: writtenAt(t, j, "partly", 4)})
	// Nothing live above 2: behind by number, but no event waits.
	wantLag(t, got, journal.StreamLag{PersistenceID: "wholly", Offset: 2, Highest: 5})
}

func testLagMany(t *testing.T, j journal.Journal) {
	// More positions than a batch of pgjournal (10 000): most on unknown
	// streams at 0 (no row to write), every 997th on a stream behind.
	const n = 12_500
	positions := make([]journal.Position, 0, n)
	var events []journal.Event
	behind := map[string]bool{}
	for i := range n {
		pid := fmt.Sprintf("many-%05d", i)
		p := journal.Position{PersistenceID: pid}
		if i%997 == 0 {
			events = append(events, evts(pid, 1, 3)...)
			p.SequenceNr = 1
			behind[pid] = true
		} else if i%1009 == 0 {
			events = append(events, evts(pid, 1, 2)...)
			p.SequenceNr = 2 // at the head
		}
		positions = append(positions, p)
	}
	mustAppend(t, j, events...)
	got := streamLags(t, j, positions) // the fallback would take a round trip per position
	if len(got) != len(behind) {
		t.Fatalf("StreamLags of %d positions reports %d streams, want the %d behind", n, len(got), len(behind))
	}
	for pid := range behind {
		wantLag(t, got, journal.StreamLag{PersistenceID: pid, Offset: 1, Highest: 3, NextWrittenAt: writtenAt(t, j, pid, 2)})
	}
}

func testLagNone(t *testing.T, j journal.Journal) {
	for _, positions := range [][]journal.Position{nil, {}} {
		got, err := lagReader(t, j).StreamLags(t.Context(), positions)
		if err != nil || len(got) != 0 {
			t.Fatalf("StreamLags(%#v) = %v, %v; want nothing", positions, got, err)
		}
	}
}

func testLagInvalid(t *testing.T, j journal.Journal) {
	appendStreams(t, j, 1, "ok")
	for _, bad := range [][]journal.Position{
		{pos("ok", 0), pos("", 1)},
		{pos("a\x00b", 1)},
		{pos("\xff", 1)},
		{pos(strings.Repeat("x", journal.MaxPersistenceIDLen+1), 1)},
		{pos("ok", 0), pos("other", 1), pos("ok", 1)},
	} {
		got, err := lagReader(t, j).StreamLags(t.Context(), bad)
		wantInvalid(t, fmt.Sprintf("StreamLags(%q)", abbrev(fmt.Appendf(nil, "%v", bad))), err)
		if got != nil {
			t.Fatalf("StreamLags failed but returned %v", got)
		}
	}
}

func testLagCancelled(t *testing.T, j journal.Journal) {
	appendStreams(t, j, 2, "s")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := lagReader(t, j).StreamLags(ctx, []journal.Position{pos("s", 1)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("StreamLags with a cancelled context = %v, want context.Canceled", err)
	}
	got := lags(t, j, []journal.Position{pos("s", 1)})
	if l := got["s"]; l.Highest != 2 || l.Lag() != 1 {
		t.Fatalf("StreamLags after a cancelled call = %+v, want Highest 2", l)
	}
}

func pos(pid string, seq uint64) journal.Position {
	return journal.Position{PersistenceID: pid, SequenceNr: seq}
}
