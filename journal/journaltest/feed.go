package journaltest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunFeedReader checks journal.FeedReader. Run calls it for journals that
// implement the interface; it fails the test for one that does not.
//
// Where a backend's FeedExact is false, a read may report again a stream
// it reported before (never above what was written) and the checks allow
// it; every check that a commit IS reported holds for every backend.
func RunFeedReader(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"StartThenAppends", testFeedStartThenAppends},
		{"FromBeginning", testFeedFromBeginning},
		{"Chain", testFeedChain},
		{"NothingNew", testFeedNothingNew},
		{"ExcludePrefix", testFeedExcludePrefix},
		{"DeleteToIsNotAMove", testFeedDeleteTo},
		{"DeletedBeforeRead", testFeedDeletedBeforeRead},
		{"AppendNext", testFeedAppendNext},
		{"CallbackError", testFeedCallbackError},
		{"Invalid", testFeedInvalid},
		{"Cancelled", testFeedCancelled},
		{"ConcurrentAppenders", testFeedConcurrent},
	})
}

func feedReader(t *testing.T, j journal.Journal) journal.FeedReader {
	t.Helper()
	f, ok := j.(journal.FeedReader)
	if !ok {
		t.Fatalf("%T does not implement journal.FeedReader", j)
	}
	return f
}

func feedStart(t *testing.T, f journal.FeedReader) journal.FeedCursor {
	t.Helper()
	c, err := f.FeedStart(t.Context())
	if err != nil {
		t.Fatalf("FeedStart: %v", err)
	}
	return c
}

// readFeed runs one ReadFeed and returns what it reported, by stream, and
// the next cursor. A stream reported twice in one read fails the test.
func readFeed(t *testing.T, f journal.FeedReader, since journal.FeedCursor, opts journal.FeedOptions) (map[string]uint64, journal.FeedCursor) {
	t.Helper()
	got := map[string]uint64{}
	var dup string
	next, err := f.ReadFeed(t.Context(), since, opts, func(m journal.Moved) error {
		if _, seen := got[m.PersistenceID]; seen && dup == "" {
			dup = m.PersistenceID
		}
		got[m.PersistenceID] = m.Highest
		return nil
	})
	if err != nil {
		t.Fatalf("ReadFeed(%q, %+v): %v", since, opts, err)
	}
	if dup != "" {
		t.Fatalf("ReadFeed(%q) reported %q twice in one read", since, dup)
	}
	return got, next
}

// wantMoved checks that got reports every stream of want with exactly its
// highest and, for an exact feed, nothing else; an inexact feed may also
// report streams of known (their highest, deleted rows included, as they
// stand) again, never above it.
func wantMoved(t *testing.T, f journal.FeedReader, what string, got, want, known map[string]uint64) {
	t.Helper()
	for pid, w := range want {
		if g, ok := got[pid]; !ok || g != w {
			t.Fatalf("%s: stream %q reported with highest %d (reported: %v), want %d; all reported: %v", what, pid, g, ok, w, got)
		}
	}
	for pid, g := range got {
		if _, ok := want[pid]; ok {
			continue
		}
		if k, ok := known[pid]; !f.FeedExact() && ok && g <= k {
			continue // an inexact feed may report a stream again
		}
		t.Fatalf("%s: stream %q reported with highest %d, but nothing of it committed in the span; all reported: %v", what, pid, g, got)
	}
}

func testFeedStartThenAppends(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	mustAppend(t, j, evts("before", 1, 2)...)
	c := feedStart(t, f)
	mustAppend(t, j, evts("a", 1, 3)...)
	mustAppend(t, j, evt("b", 1), evt("before", 3))
	got, next := readFeed(t, f, c, journal.FeedOptions{})
	wantMoved(t, f, "ReadFeed after FeedStart", got, map[string]uint64{"a": 3, "b": 1, "before": 3}, nil)
	if next == "" {
		t.Fatal("ReadFeed returned the empty cursor (the beginning)")
	}
}

func testFeedFromBeginning(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	mustAppend(t, j, evts("five", 1, 5)...)
	mustAppend(t, j, evt("gap", 7), evt("gap", 2))
	mustAppend(t, j, evts("gone", 1, 3)...)
	mustDeleteTo(t, j, "gone", 3) // the highest row stays, deleted
	mustAppend(t, j, evts("half", 1, 4)...)
	mustDeleteTo(t, j, "half", 2)
	got, _ := readFeed(t, f, "", journal.FeedOptions{})
	wantMoved(t, f, `ReadFeed("")`, got, map[string]uint64{"five": 5, "gap": 7, "gone": 3, "half": 4}, nil)
}

func testFeedChain(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	c := feedStart(t, f)
	heads := map[string]uint64{}
	for round := range 6 {
		want := map[string]uint64{}
		for k := range 4 {
			pid := fmt.Sprintf("s%d", (round+k*3)%7)
			from := heads[pid] + 1
			to := from + uint64(k)
			mustAppend(t, j, evts(pid, from, to)...)
			heads[pid], want[pid] = to, to
		}
		var got map[string]uint64
		got, c = readFeed(t, f, c, journal.FeedOptions{})
		wantMoved(t, f, fmt.Sprintf("round %d", round), got, want, heads)
	}
}

func testFeedNothingNew(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	mustAppend(t, j, evts("x", 1, 3)...)
	c := feedStart(t, f)
	for i := range 3 {
		got, next := readFeed(t, f, c, journal.FeedOptions{})
		wantMoved(t, f, fmt.Sprintf("read %d with nothing appended", i), got, nil, map[string]uint64{"x": 3})
		c = next
	}
	// A cursor can be read again: the same span, the same streams.
	mustAppend(t, j, evt("x", 4))
	first, _ := readFeed(t, f, c, journal.FeedOptions{})
	again, _ := readFeed(t, f, c, journal.FeedOptions{})
	wantMoved(t, f, "first read", first, map[string]uint64{"x": 4}, nil)
	wantMoved(t, f, "the same cursor read again", again, map[string]uint64{"x": 4}, nil)
}

func testFeedExcludePrefix(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	c := feedStart(t, f)
	mustAppend(t, j, evt("outbox::a::offsets", 1), evt("source", 1), evt("outbox-not-quite", 1), evt("50%_off", 1))
	got, _ := readFeed(t, f, c, journal.FeedOptions{ExcludePrefix: "outbox::"})
	wantMoved(t, f, "ReadFeed excluding outbox::", got, map[string]uint64{"source": 1, "outbox-not-quite": 1, "50%_off": 1}, nil)
	got, _ = readFeed(t, f, c, journal.FeedOptions{ExcludePrefix: "50%"}) // bytes, not a pattern
	wantMoved(t, f, `ReadFeed excluding "50%"`, got, map[string]uint64{"source": 1, "outbox-not-quite": 1, "outbox::a::offsets": 1}, nil)
	got, _ = readFeed(t, f, "", journal.FeedOptions{ExcludePrefix: "outbox::"})
	wantMoved(t, f, `ReadFeed("") excluding outbox::`, got, map[string]uint64{"source": 1, "outbox-not-quite": 1, "50%_off": 1}, nil)
}

func testFeedDeleteTo(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	mustAppend(t, j, evts("pruned", 1, 5)...)
	mustAppend(t, j, evts("emptied", 1, 3)...)
	c := feedStart(t, f)
	mustDeleteTo(t, j, "pruned", 3)
	mustDeleteTo(t, j, "emptied", 3) // marks the highest row deleted
	got, c := readFeed(t, f, c, journal.FeedOptions{})
	known := map[string]uint64{"pruned": 5, "emptied": 3}
	wantMoved(t, f, "ReadFeed after DeleteTo only", got, nil, known)
	// An append after it is reported as ever.
	mustAppend(t, j, evt("emptied", 4))
	got, _ = readFeed(t, f, c, journal.FeedOptions{})
	wantMoved(t, f, "ReadFeed after an append to an emptied stream", got, map[string]uint64{"emptied": 4}, known)
}

func testFeedDeletedBeforeRead(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	c := feedStart(t, f)
	mustAppend(t, j, evts("short-lived", 1, 3)...)
	mustDeleteTo(t, j, "short-lived", 3)
	got, _ := readFeed(t, f, c, journal.FeedOptions{})
	// Its highest row is still there, deleted: reported or not, never
	// with another number.
	if g, ok := got["short-lived"]; ok && g != 3 {
		t.Fatalf("stream appended then emptied reported with highest %d, want 3 (or not at all)", g)
	}
	if len(got) > 1 {
		t.Fatalf("ReadFeed reported %v, want at most the one stream written", got)
	}
}

func testFeedAppendNext(t *testing.T, j journal.Journal) {
	na, ok := j.(journal.NextAppender)
	if !ok {
		t.Skipf("%T does not implement journal.NextAppender", j)
	}
	f := feedReader(t, j)
	c := feedStart(t, f)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := na.AppendNext(t.Context(), evt("next", seq)); err != nil {
			t.Fatalf("AppendNext(%d): %v", seq, err)
		}
	}
	got, _ := readFeed(t, f, c, journal.FeedOptions{})
	wantMoved(t, f, "ReadFeed after AppendNext", got, map[string]uint64{"next": 3}, nil)
}

func testFeedCallbackError(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	c := feedStart(t, f)
	mustAppend(t, j, evt("a", 1), evt("b", 1), evt("c", 1))
	stop := errors.New("stop here")
	calls := 0
	next, err := f.ReadFeed(t.Context(), c, journal.FeedOptions{}, func(journal.Moved) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("ReadFeed with a failing callback = %v, want its error", err)
	}
	if calls != 1 {
		t.Fatalf("the failing callback was called %d times, want 1", calls)
	}
	if next != c {
		t.Fatalf("ReadFeed with a failing callback returned cursor %q, want the one given (%q)", next, c)
	}
	got, _ := readFeed(t, f, c, journal.FeedOptions{})
	wantMoved(t, f, "ReadFeed again after the failed one", got, map[string]uint64{"a": 1, "b": 1, "c": 1}, nil)
}

func testFeedInvalid(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	mustAppend(t, j, evt("a", 1))
	c := feedStart(t, f)
	for _, bad := range []journal.FeedCursor{"not a cursor", "-5", "1\x002", "\xff", c + "x"} {
		_, err := f.ReadFeed(t.Context(), bad, journal.FeedOptions{}, func(journal.Moved) error { return nil })
		wantInvalid(t, fmt.Sprintf("ReadFeed(%q)", bad), err)
	}
	for _, prefix := range []string{"outbox\x00", "\xc3"} {
		_, err := f.ReadFeed(t.Context(), c, journal.FeedOptions{ExcludePrefix: prefix}, func(journal.Moved) error { return nil })
		wantInvalid(t, fmt.Sprintf("ReadFeed excluding %q", prefix), err)
	}
	// The journal still works.
	mustAppend(t, j, evt("a", 2))
	got, _ := readFeed(t, f, c, journal.FeedOptions{})
	wantMoved(t, f, "ReadFeed after invalid ones", got, map[string]uint64{"a": 2}, nil)
}

func testFeedCancelled(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	c := feedStart(t, f)
	mustAppend(t, j, evt("a", 1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.FeedStart(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("FeedStart with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := f.ReadFeed(ctx, c, journal.FeedOptions{}, func(journal.Moved) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadFeed with a cancelled context = %v, want context.Canceled", err)
	}
	got, _ := readFeed(t, f, c, journal.FeedOptions{})
	wantMoved(t, f, "ReadFeed after a cancelled one", got, map[string]uint64{"a": 1}, nil)
}

// testFeedConcurrent follows a chain of reads while writers append: once
// the writers are done, one more read, and every stream has been reported
// at its final highest by some read of the chain.
func testFeedConcurrent(t *testing.T, j journal.Journal) {
	f := feedReader(t, j)
	const writers, streams, perStream = 4, 5, 12
	c := feedStart(t, f)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for seq := uint64(1); seq <= perStream; seq++ {
				for s := range streams {
					pid := fmt.Sprintf("w%d-s%d", w, s)
					if err := j.Append(t.Context(), evt(pid, seq)); err != nil {
						errs[w] = err
						return
					}
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	seen := map[string]uint64{}
	var failed error
	read := func() {
		next, err := f.ReadFeed(t.Context(), c, journal.FeedOptions{}, func(m journal.Moved) error {
			seen[m.PersistenceID] = max(seen[m.PersistenceID], m.Highest)
			return nil
		})
		if err != nil && failed == nil {
			failed = err
		}
		c = next
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		read()
	}
	read() // after the last commit
	if failed != nil {
		t.Fatalf("ReadFeed: %v", failed)
	}
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
	}
	want := map[string]uint64{}
	for w := range writers {
		for s := range streams {
			want[fmt.Sprintf("w%d-s%d", w, s)] = perStream
		}
	}
	if !maps.Equal(seen, want) {
		keys := slices.Sorted(maps.Keys(seen))
		t.Fatalf("the chain of reads reported %d streams (%v), want every one of the %d at %d: %v", len(seen), keys, len(want), perStream, seen)
	}
}
