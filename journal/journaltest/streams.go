package journaltest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunStreamLister checks journal.StreamLister. Run calls it for journals
// that implement the interface; it fails the test for one that does not.
//
// The order of PersistenceIDs is the backend's (a PostgreSQL column's
// collation, byte order in memory). Where a case checks an exact order, its
// ids are lowercase ASCII letters and digits of one length, which every
// common collation (C, libc and ICU locales) sorts as bytes; elsewhere it
// checks that paging agrees with one call and with the bound After, which
// holds in any order.
func RunStreamLister(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"Empty", testListEmpty},
		{"Order", testListOrder},
		{"Paging", testListPaging},
		{"After", testListAfter},
		{"ExcludePrefix", testListExcludePrefix},
		{"Prefix", testListPrefix},
		{"DeletedStaysListed", testListDeleted},
		{"Invalid", testListInvalid},
		{"Cancelled", testListCancelled},
	})
}

// RunHighestReader checks journal.HighestReader. Run calls it for journals
// that implement the interface; it fails the test for one that does not.
func RunHighestReader(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"Mixed", testHighestMixed},
		{"None", testHighestNone},
		{"Many", testHighestMany},
		{"Invalid", testHighestInvalid},
	})
}

func streamLister(t *testing.T, j journal.Journal) journal.StreamLister {
	t.Helper()
	l, ok := j.(journal.StreamLister)
	if !ok {
		t.Fatalf("%T does not implement journal.StreamLister", j)
	}
	return l
}

func highestReader(t *testing.T, j journal.Journal) journal.HighestReader {
	t.Helper()
	h, ok := j.(journal.HighestReader)
	if !ok {
		t.Fatalf("%T does not implement journal.HighestReader", j)
	}
	return h
}

func list(t *testing.T, l journal.StreamLister, opts journal.ListOptions) []string {
	t.Helper()
	ids, err := l.PersistenceIDs(t.Context(), opts)
	if err != nil {
		t.Fatalf("PersistenceIDs(%+v): %v", opts, err)
	}
	return ids
}

// listAll pages through l with pages of limit ids, checking each page's
// size, and returns the concatenation.
func listAll(t *testing.T, l journal.StreamLister, opts journal.ListOptions) []string {
	t.Helper()
	var all []string
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("PersistenceIDs(%+v): paging does not end (%d ids so far)", opts, len(all))
		}
		page := list(t, l, opts)
		if len(page) > opts.Limit {
			t.Fatalf("PersistenceIDs(%+v) returned %d ids, more than the limit", opts, len(page))
		}
		all = append(all, page...)
		if len(page) < opts.Limit {
			return all
		}
		opts.After = page[len(page)-1]
	}
}

// appendStreams appends events 1..n of every pid, in one batch.
func appendStreams(t *testing.T, j journal.Journal, n uint64, pids ...string) {
	t.Helper()
	var events []journal.Event
	for _, pid := range pids {
		events = append(events, evts(pid, 1, n)...)
	}
	mustAppend(t, j, events...)
}

// plainIDs returns n ids "s0000", "s0001", … : lowercase letters and
// digits of one length, sorted the same in every common collation.
func plainIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%04d", i)
	}
	return ids
}

// shuffled returns ids in a fixed order unrelated to their sort order.
func shuffled(ids []string) []string {
	out := slices.Clone(ids)
	for i := range out {
		k := (i*7919 + 13) % len(out)
		out[i], out[k] = out[k], out[i]
	}
	return out
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func testListEmpty(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	if ids := list(t, l, journal.ListOptions{}); len(ids) != 0 {
		t.Fatalf("PersistenceIDs of an empty journal = %q, want none", ids)
	}
}

func testListOrder(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	ids := plainIDs(40)
	// Written out of order, one batch per stream, some streams longer.
	for i, pid := range shuffled(ids) {
		mustAppend(t, j, evts(pid, 1, uint64(1+i%4))...)
	}
	wantIDs(t, "PersistenceIDs (default limit)", list(t, l, journal.ListOptions{}), ids)
	wantIDs(t, "PersistenceIDs (limit 5)", list(t, l, journal.ListOptions{Limit: 5}), ids[:5])
	wantIDs(t, "PersistenceIDs (limit 1)", list(t, l, journal.ListOptions{Limit: 1}), ids[:1])
}

func testListPaging(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	// Ids whose order differs between collations: paging must agree with
	// one call whatever the order is.
	ids := append(plainIDs(23),
		"Upper", "lower", "a-b", "ab", "a b", "ä", "z", "日本", "outbox::x::offsets", "a:b", "A")
	appendStreams(t, j, 2, ids...)

	one := list(t, l, journal.ListOptions{Limit: journal.MaxListLimit})
	if got, want := sortedCopy(one), sortedCopy(ids); !slices.Equal(got, want) {
		t.Fatalf("PersistenceIDs lists %q, want the ids %q (in any order)", got, want)
	}
	for _, limit := range []int{1, 3, 7, len(ids), len(ids) + 1} {
		paged := listAll(t, l, journal.ListOptions{Limit: limit})
		wantIDs(t, fmt.Sprintf("pages of %d", limit), paged, one)
	}
	var iterated []string
	for pid, err := range journal.AllPersistenceIDs(t.Context(), l, journal.ListOptions{Limit: 4}) {
		if err != nil {
			t.Fatalf("AllPersistenceIDs: %v", err)
		}
		iterated = append(iterated, pid)
	}
	wantIDs(t, "AllPersistenceIDs", iterated, one)
}

func testListAfter(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	ids := plainIDs(10)
	appendStreams(t, j, 1, ids...)
	wantIDs(t, "after an id", list(t, l, journal.ListOptions{After: ids[3]}), ids[4:])
	wantIDs(t, "after a bound between ids", list(t, l, journal.ListOptions{After: "s0003x"}), ids[4:])
	wantIDs(t, "after the last id", list(t, l, journal.ListOptions{After: ids[9]}), []string{})
	wantIDs(t, "after, limited", list(t, l, journal.ListOptions{After: ids[1], Limit: 2}), ids[2:4])
}

func testListExcludePrefix(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	sources := plainIDs(6)
	offsets := []string{"outbox::a::offsets", "outbox::b::offsets", "outbox::s0002::offsets"}
	appendStreams(t, j, 2, append(slices.Clone(sources), offsets...)...)
	got := list(t, l, journal.ListOptions{ExcludePrefix: "outbox::"})
	wantIDs(t, "PersistenceIDs excluding outbox::", got, sources)
	// Paging through excluded ids: pages stay full.
	paged := listAll(t, l, journal.ListOptions{ExcludePrefix: "outbox::", Limit: 2})
	wantIDs(t, "pages of 2 excluding outbox::", paged, sources)
	// Everything excluded.
	if ids := list(t, l, journal.ListOptions{ExcludePrefix: "s"}); !slices.Equal(sortedCopy(ids), sortedCopy(offsets)) {
		t.Fatalf("PersistenceIDs excluding \"s\" = %q, want only the outbox streams %q", ids, offsets)
	}
	// A prefix is bytes, not a pattern.
	appendStreams(t, j, 1, "50%_off", "5000")
	got = list(t, l, journal.ListOptions{ExcludePrefix: "50%", Limit: journal.MaxListLimit})
	if slices.Contains(got, "50%_off") || !slices.Contains(got, "5000") {
		t.Fatalf("PersistenceIDs excluding \"50%%\" = %q: want 5000 listed and 50%%_off not", got)
	}
}

func testListDeleted(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	appendStreams(t, j, 3, "s0001", "s0002")
	mustDeleteTo(t, j, "s0001", 3) // every event: the highest row stays, deleted
	wantIDs(t, "PersistenceIDs after DeleteTo", list(t, l, journal.ListOptions{}), []string{"s0001", "s0002"})
}

func testListInvalid(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	appendStreams(t, j, 1, "s0001")
	for _, opts := range []journal.ListOptions{
		{Limit: -1},
		{Limit: journal.MaxListLimit + 1},
		{After: "a\x00b"},
		{After: "\xff"},
		{ExcludePrefix: "outbox\x00"},
		{ExcludePrefix: "\xc3"},
		{Prefix: "outbox\x00"},
		{Prefix: "\xc3"},
	} {
		ids, err := l.PersistenceIDs(t.Context(), opts)
		wantInvalid(t, fmt.Sprintf("PersistenceIDs(%#v)", opts), err)
		if ids != nil {
			t.Fatalf("PersistenceIDs(%#v) failed but returned %q", opts, ids)
		}
	}
}

func testListCancelled(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	appendStreams(t, j, 1, "s0001")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.PersistenceIDs(ctx, journal.ListOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("PersistenceIDs with a cancelled context = %v, want context.Canceled", err)
	}
	// The journal still works.
	wantIDs(t, "PersistenceIDs after a cancelled call", list(t, l, journal.ListOptions{}), []string{"s0001"})
}

func sortedCopy(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func highest(t *testing.T, h journal.HighestReader, pids []string) map[string]uint64 {
	t.Helper()
	got, err := h.HighestSequenceNrs(t.Context(), pids)
	if err != nil {
		t.Fatalf("HighestSequenceNrs(%d ids): %v", len(pids), err)
	}
	return got
}

func testHighestMixed(t *testing.T, j journal.Journal) {
	h := highestReader(t, j)
	mustAppend(t, j, evts("five", 1, 5)...)
	mustAppend(t, j, evts("one", 1, 1)...)
	mustAppend(t, j, evts("gone", 1, 3)...)
	mustDeleteTo(t, j, "gone", 3)
	mustAppend(t, j, evt("gap", 7)) // out of order, with a gap
	mustAppend(t, j, evt("gap", 2))
	pids := []string{"five", "one", "gone", "gap", "unknown", "five", "ünï ✓ 'q'"}
	got := highest(t, h, pids)
	want := map[string]uint64{"five": 5, "one": 1, "gone": 3, "gap": 7, "unknown": 0, "ünï ✓ 'q'": 0}
	if len(got) != len(want) {
		t.Fatalf("HighestSequenceNrs = %v, want %v (one entry per distinct id)", got, want)
	}
	for pid, w := range want {
		if g, ok := got[pid]; !ok || g != w {
			t.Fatalf("HighestSequenceNrs[%q] = %d (present %v), want %d; all: %v", pid, g, ok, w, got)
		}
		wantHighest(t, j, pid, w) // agrees with the single read
	}
}

func testHighestNone(t *testing.T, j journal.Journal) {
	h := highestReader(t, j)
	for _, pids := range [][]string{nil, {}} {
		got := highest(t, h, pids)
		if got == nil || len(got) != 0 {
			t.Fatalf("HighestSequenceNrs(%#v) = %#v, want an empty, non-nil map", pids, got)
		}
	}
}

func testHighestMany(t *testing.T, j journal.Journal) {
	h := highestReader(t, j)
	const n = 2500
	var events []journal.Event
	pids := make([]string, 0, 2*n)
	for i := range n {
		pid := fmt.Sprintf("many-%d", i)
		pids = append(pids, pid, fmt.Sprintf("absent-%d", i))
		events = append(events, evts(pid, 1, uint64(1+i%3))...)
	}
	mustAppend(t, j, events...)
	got := highest(t, h, pids)
	if len(got) != 2*n {
		t.Fatalf("HighestSequenceNrs of %d ids returned %d entries", 2*n, len(got))
	}
	for i := range n {
		if g, w := got[fmt.Sprintf("many-%d", i)], uint64(1+i%3); g != w {
			t.Fatalf("HighestSequenceNrs[many-%d] = %d, want %d", i, g, w)
		}
		if g := got[fmt.Sprintf("absent-%d", i)]; g != 0 {
			t.Fatalf("HighestSequenceNrs[absent-%d] = %d, want 0", i, g)
		}
	}
}

func testHighestInvalid(t *testing.T, j journal.Journal) {
	h := highestReader(t, j)
	mustAppend(t, j, evt("ok", 1))
	for _, bad := range []string{"", "a\x00b", "\xff", strings.Repeat("x", journal.MaxPersistenceIDLen+1)} {
		got, err := h.HighestSequenceNrs(t.Context(), []string{"ok", bad})
		wantInvalid(t, fmt.Sprintf("HighestSequenceNrs with %q", abbrev([]byte(bad))), err)
		if got != nil {
			t.Fatalf("HighestSequenceNrs failed but returned %v", got)
		}
	}
}
