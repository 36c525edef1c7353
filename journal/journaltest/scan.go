package journaltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunScanner checks journal.Scanner. Run calls it for journals that
// implement the interface; it fails the test for one that does not.
//
// As for StreamLister, the order of streams is the backend's; cases that
// check an exact order use ids that every common collation sorts as
// bytes, the others check that paging agrees with one call.
func RunScanner(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"Empty", testScanEmpty},
		{"Order", testScanOrder},
		{"Paging", testScanPaging},
		{"After", testScanAfter},
		{"Deleted", testScanDeleted},
		{"ExcludePrefix", testScanExcludePrefix},
		{"Invalid", testScanInvalid},
		{"Cancelled", testScanCancelled},
	})
}

func scanner(t *testing.T, j journal.Journal) journal.Scanner {
	t.Helper()
	s, ok := j.(journal.Scanner)
	if !ok {
		t.Fatalf("%T does not implement journal.Scanner", j)
	}
	return s
}

func scan(t *testing.T, s journal.Scanner, opts journal.ScanOptions) []journal.Event {
	t.Helper()
	events, err := replayChecked(s.Scan(t.Context(), opts))
	if err != nil {
		t.Fatalf("Scan(%+v): %v", opts, err)
	}
	if len(events) > max(opts.Limit, 0) && opts.Limit != 0 {
		t.Fatalf("Scan(%+v) yielded %d events, more than the limit", opts, len(events))
	}
	return events
}

// scanAll pages through s with pages of opts.Limit events.
func scanAll(t *testing.T, s journal.Scanner, opts journal.ScanOptions) []journal.Event {
	t.Helper()
	var all []journal.Event
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			t.Fatalf("Scan(%+v): paging does not end (%d events so far)", opts, len(all))
		}
		page := scan(t, s, opts)
		all = append(all, page...)
		if len(page) < opts.Limit {
			return all
		}
		last := page[len(page)-1]
		opts.After = pos(last.PersistenceID, last.SequenceNr)
	}
}

// expectScan is what a scan of ids (in the order given) yields, computed
// with Replay.
func expectScan(t *testing.T, j journal.Journal, ids []string) []journal.Event {
	t.Helper()
	var want []journal.Event
	for _, pid := range ids {
		want = append(want, replay(t, j, pid, 0, math.MaxUint64, math.MaxUint64)...)
	}
	return want
}

// streamOrder returns the distinct persistence ids of events in order of
// first appearance, and fails t if a stream's events are not contiguous.
func streamOrder(t *testing.T, events []journal.Event) []string {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	for i, ev := range events {
		if i > 0 && ev.PersistenceID == events[i-1].PersistenceID {
			continue
		}
		if seen[ev.PersistenceID] {
			t.Fatalf("Scan yielded stream %q in two places: %s", ev.PersistenceID, keys(events))
		}
		seen[ev.PersistenceID] = true
		ids = append(ids, ev.PersistenceID)
	}
	return ids
}

func testScanEmpty(t *testing.T, j journal.Journal) {
	if got := scan(t, scanner(t, j), journal.ScanOptions{}); len(got) != 0 {
		t.Fatalf("Scan of an empty journal yielded %s", keys(got))
	}
}

func testScanOrder(t *testing.T, j journal.Journal) {
	s := scanner(t, j)
	ids := plainIDs(30)
	for i, pid := range shuffled(ids) {
		mustAppend(t, j, evts(pid, 1, uint64(1+i%4))...)
	}
	want := expectScan(t, j, ids)
	wantEvents(t, "Scan", scan(t, s, journal.ScanOptions{}), want)
	wantEvents(t, "Scan, limit 5", scan(t, s, journal.ScanOptions{Limit: 5}), want[:5])
}

func testScanPaging(t *testing.T, j journal.Journal) {
	s := scanner(t, j)
	ids := append(plainIDs(13), "Upper", "lower", "a-b", "ab", "a b", "ä", "z", "日本", "a:b", "A")
	for i, pid := range ids {
		mustAppend(t, j, evts(pid, 1, uint64(1+i%3))...)
	}
	one := scan(t, s, journal.ScanOptions{Limit: journal.MaxReadTotal})
	// One call yields each stream whole, in the backend's order, each as
	// Replay reads it.
	wantEvents(t, "Scan", one, expectScan(t, j, streamOrder(t, one)))
	if got, want := len(streamOrder(t, one)), len(ids); got != want {
		t.Fatalf("Scan yielded %d streams, want %d", got, want)
	}
	for _, limit := range []int{1, 2, 7, len(one), len(one) + 1} {
		wantEvents(t, fmt.Sprintf("pages of %d", limit), scanAll(t, s, journal.ScanOptions{Limit: limit}), one)
	}
}

func testScanAfter(t *testing.T, j journal.Journal) {
	s := scanner(t, j)
	ids := plainIDs(4)
	for _, pid := range ids {
		mustAppend(t, j, evts(pid, 1, 3)...)
	}
	all := expectScan(t, j, ids)
	wantEvents(t, "after s0001/2", scan(t, s, journal.ScanOptions{After: pos(ids[1], 2)}), all[5:])
	wantEvents(t, "after s0001/3", scan(t, s, journal.ScanOptions{After: pos(ids[1], 3)}), all[6:])
	wantEvents(t, "after s0001 at a number above its events", scan(t, s, journal.ScanOptions{After: pos(ids[1], math.MaxUint64)}), all[6:])
	wantEvents(t, "after a bound between ids", scan(t, s, journal.ScanOptions{After: pos("s0001x", 0)}), all[6:])
	wantEvents(t, "after s0002/0", scan(t, s, journal.ScanOptions{After: pos(ids[2], 0)}), all[6:])
	wantEvents(t, "after the last event", scan(t, s, journal.ScanOptions{After: pos(ids[3], 3)}), nil)
}

func testScanDeleted(t *testing.T, j journal.Journal) {
	s := scanner(t, j)
	mustAppend(t, j, evts("s0001", 1, 4)...)
	mustAppend(t, j, evts("s0002", 1, 2)...)
	mustAppend(t, j, evts("s0003", 1, 2)...)
	mustDeleteTo(t, j, "s0001", 2)
	mustDeleteTo(t, j, "s0002", 2)
	got := scan(t, s, journal.ScanOptions{})
	wantEvents(t, "Scan over deleted rows", got, expectScan(t, j, []string{"s0001", "s0003"}))
	wantSeqs(t, "Scan over deleted rows", got, []uint64{3, 4, 1, 2})
	// Pages end and resume on deleted rows as anywhere.
	wantEvents(t, "pages of 1 over deleted rows", scanAll(t, s, journal.ScanOptions{Limit: 1}), got)
}

func testScanExcludePrefix(t *testing.T, j journal.Journal) {
	s := scanner(t, j)
	mustAppend(t, j, evts("outbox::a::offsets", 1, 3)...)
	mustAppend(t, j, evts("s0001", 1, 2)...)
	mustAppend(t, j, evts("outbox::s0001::offsets", 1, 1)...)
	mustAppend(t, j, evts("50%_off", 1, 1)...)
	got := scan(t, s, journal.ScanOptions{ExcludePrefix: "outbox::"})
	if ids := streamOrder(t, got); len(ids) != 2 || !sameSet(ids, []string{"s0001", "50%_off"}) {
		t.Fatalf("Scan excluding outbox:: yielded streams %q, want s0001 and 50%%_off", ids)
	}
	wantEvents(t, "pages of 1 excluding outbox::", scanAll(t, s, journal.ScanOptions{ExcludePrefix: "outbox::", Limit: 1}), got)
	got = scan(t, s, journal.ScanOptions{ExcludePrefix: "50%"})
	if ids := streamOrder(t, got); len(ids) != 3 {
		t.Fatalf("Scan excluding \"50%%\" yielded streams %q, want the three others", ids)
	}
}

func sameSet(a, b []string) bool {
	return fmt.Sprint(sortedCopy(a)) == fmt.Sprint(sortedCopy(b))
}

func testScanInvalid(t *testing.T, j journal.Journal) {
	s := scanner(t, j)
	mustAppend(t, j, evt("s0001", 1))
	for _, opts := range []journal.ScanOptions{
		{Limit: -1},
		{Limit: journal.MaxReadTotal + 1},
		{After: pos("a\x00b", 1)},
		{After: pos("\xff", 0)},
		{ExcludePrefix: "outbox\x00"},
		{ExcludePrefix: "\xc3"},
	} {
		elems := drain(s.Scan(t.Context(), opts))
		if len(elems) != 1 {
			t.Fatalf("Scan(%#v) yielded %d elements, want one error", opts, len(elems))
		}
		wantInvalid(t, fmt.Sprintf("Scan(%#v)", opts), elems[0].err)
	}
}

func testScanCancelled(t *testing.T, j journal.Journal) {
	s := scanner(t, j)
	mustAppend(t, j, evts("s0001", 1, 3)...)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	elems := drain(s.Scan(ctx, journal.ScanOptions{}))
	if len(elems) != 1 || !errors.Is(elems[0].err, context.Canceled) {
		t.Fatalf("Scan with a cancelled context yielded %d elements (first error %v), want one context.Canceled", len(elems), firstErr(elems))
	}
	wantSeqs(t, "Scan after a cancelled one", scan(t, s, journal.ScanOptions{}), []uint64{1, 2, 3})
}
