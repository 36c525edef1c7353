package journaltest

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunHead checks journal.HeadReader. Run calls it for journals that
// implement the interface; it fails the test for one that does not.
func RunHead(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"Unknown", testHeadUnknown},
		{"MatchesLastAndHighest", testHeadMatches},
		{"AllDeleted", testHeadAllDeleted},
		{"Invalid", testHeadInvalid},
		{"ConsistentUnderWrites", testHeadConsistent},
	})
}

func headReader(t *testing.T, j journal.Journal) journal.HeadReader {
	t.Helper()
	h, ok := j.(journal.HeadReader)
	if !ok {
		t.Fatalf("%T does not implement journal.HeadReader", j)
	}
	return h
}

func testHeadUnknown(t *testing.T, j journal.Journal) {
	h, err := headReader(t, j).Head(t.Context(), "nobody")
	if err != nil {
		t.Fatalf("Head of an unknown stream: %v", err)
	}
	if h.HasLast || h.Highest != 0 {
		t.Fatalf("Head of an unknown stream = %+v, want the zero Head", h)
	}
}

func testHeadMatches(t *testing.T, j journal.Journal) {
	const pid = "head"
	mustAppend(t, j, evts(pid, 1, 4)...)
	mustAppend(t, j, evts("other", 1, 9)...)
	h, err := headReader(t, j).Head(t.Context(), pid)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	last := wantLast(t, j, pid, 4)
	if !h.HasLast || h.Highest != 4 {
		t.Fatalf("Head = {HasLast: %v, Highest: %d}, want {true, 4}", h.HasLast, h.Highest)
	}
	if d := diffEvent(h.Last, last); d != "" {
		t.Fatalf("Head.Last differs from Last: %s", d)
	}
	// Below the highest deleted: the newest live row is still the head.
	mustDeleteTo(t, j, pid, 2)
	h, err = headReader(t, j).Head(t.Context(), pid)
	if err != nil || !h.HasLast || h.Last.SequenceNr != 4 || h.Highest != 4 {
		t.Fatalf("Head after DeleteTo(2) = %+v, %v; want last 4, highest 4", h, err)
	}
}

func testHeadAllDeleted(t *testing.T, j journal.Journal) {
	const pid = "wiped"
	mustAppend(t, j, evts(pid, 1, 3)...)
	mustDeleteTo(t, j, pid, 3)
	h, err := headReader(t, j).Head(t.Context(), pid)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if h.HasLast || h.Highest != 3 {
		t.Fatalf("Head of a stream deleted to its highest = {HasLast: %v, Highest: %d}, want {false, 3}", h.HasLast, h.Highest)
	}
}

func testHeadInvalid(t *testing.T, j journal.Journal) {
	for _, pid := range []string{"", "nul\x00", "\xff", strings.Repeat("p", journal.MaxPersistenceIDLen+1)} {
		_, err := headReader(t, j).Head(t.Context(), pid)
		wantInvalid(t, fmt.Sprintf("Head(%.20q)", pid), err)
	}
}

// testHeadConsistent reads heads while a writer appends and checks that
// every head is one the stream really had: its newest live event is its
// highest (nothing is deleted here), never an older row beside a newer
// highest.
func testHeadConsistent(t *testing.T, j journal.Journal) {
	const pid, n = "racing", 60
	hr := headReader(t, j)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Go(func() {
		for seq := uint64(1); seq <= n; seq++ {
			if err := j.Append(ctx, evt(pid, seq)); err != nil {
				errs <- err
				return
			}
		}
	})
	var bad string
	for range 4 * n {
		h, err := hr.Head(ctx, pid)
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		if h.Highest > 0 && (!h.HasLast || h.Last.SequenceNr != h.Highest) {
			bad = fmt.Sprintf("HasLast %v, last %d, highest %d", h.HasLast, h.Last.SequenceNr, h.Highest)
			break
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("Append: %v", err)
	default:
	}
	if bad != "" {
		t.Fatalf("Head read a state the stream never had: %s", bad)
	}
}
