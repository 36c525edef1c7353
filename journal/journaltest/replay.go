package journaltest

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunReplay checks Replay's order, bounds and limit, breaking out of the
// loop, calling the journal from the loop body, and a long stream.
func RunReplay(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"BoundsAndMax", testReplayBounds},
		{"EarlyBreak", testReplayEarlyBreak},
		{"CallsInsideLoop", testReplayCallsInsideLoop},
		{"Large", testReplayLarge},
	})
}

func testReplayBounds(t *testing.T, j journal.Journal) {
	const pid = "bounds"
	const maxU, maxI = uint64(math.MaxUint64), uint64(math.MaxInt64)
	// Inserted out of order, so storage order cannot stand in for sorting.
	mustAppend(t, j, evts(pid, 6, 10)...)
	mustAppend(t, j, evts(pid, 1, 5)...)
	all := seqRange(1, 10)
	cases := []struct {
		from, to, max uint64
		want          []uint64
	}{
		{1, 10, maxU, all},
		{0, maxU, maxU, all},     // from 0 is from the start, to MaxUint64 is to the end
		{1, maxI + 1, maxU, all}, // above MaxInt64: clamped
		{1, maxI, maxU, all},
		{3, 7, maxU, seqRange(3, 7)},
		{3, 7, 2, []uint64{3, 4}},
		{0, maxU, 0, nil}, // max 0 yields nothing
		{0, maxU, 1, []uint64{1}},
		{4, maxU, 1, []uint64{4}},
		{1, 10, 10, all},
		{1, 10, 11, all},
		{1, 10, 9, seqRange(1, 9)},
		{5, 5, maxU, []uint64{5}},
		{10, 10, maxU, []uint64{10}},
		{10, maxU, maxU, []uint64{10}},
		{7, 3, maxU, nil}, // from > to
		{11, maxU, maxU, nil},
		{0, 0, maxU, nil},
		{maxI, maxU, maxU, nil},
	}
	for _, tc := range cases {
		got := replay(t, j, pid, tc.from, tc.to, tc.max)
		wantSeqs(t, fmt.Sprintf("Replay(from %d, to %d, max %d)", tc.from, tc.to, tc.max), got, tc.want)
		for _, ev := range got {
			if !bytes.Equal(ev.Payload, payloadFor(pid, ev.SequenceNr)) {
				t.Fatalf("event %d has payload %q", ev.SequenceNr, ev.Payload)
			}
		}
	}
	// fromSeq above MaxInt64 is past every event, even one at MaxInt64.
	const top = "bounds-top"
	mustAppend(t, j, journal.Event{PersistenceID: top, SequenceNr: maxI, Payload: payloadFor(top, maxI)})
	wantSeqs(t, "Replay(from MaxInt64+1)", replay(t, j, top, maxI+1, maxU, maxU), nil)
	wantSeqs(t, "Replay(from MaxInt64)", replay(t, j, top, maxI, maxU, maxU), []uint64{maxI})
}

// Breaking out of Replay must release what the iteration holds (a lock, a
// connection); with a small pool, a leak shows up as a hang within the
// operations that follow.
func testReplayEarlyBreak(t *testing.T, j journal.Journal) {
	const pid = "break"
	mustAppend(t, j, evts(pid, 1, 100)...)

	// Creating an iterator without ranging over it holds nothing either.
	for range 20 {
		_ = j.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64)
	}
	n := 0
	for _, err := range j.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("Replay yielded %d events before break, want 1", n)
	}
	var seen []uint64
	for ev, err := range j.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		seen = append(seen, ev.SequenceNr)
		if len(seen) == 3 {
			break
		}
	}
	if fmt.Sprint(seen) != "[1 2 3]" {
		t.Fatalf("Replay yielded %v before break, want [1 2 3]", seen)
	}

	ctx := t.Context()
	within(t, "50 rounds of operations after breaking out of Replay", func() error {
		for i := range uint64(50) {
			k := 0
			for _, err := range j.Replay(ctx, pid, i+1, math.MaxUint64, math.MaxUint64) {
				if err != nil {
					return fmt.Errorf("round %d: Replay: %w", i, err)
				}
				if k++; k == 2 {
					break
				}
			}
			if _, err := j.HighestSequenceNr(ctx, pid); err != nil {
				return fmt.Errorf("round %d: HighestSequenceNr: %w", i, err)
			}
			if _, _, err := j.Last(ctx, pid); err != nil {
				return fmt.Errorf("round %d: Last: %w", i, err)
			}
			if err := j.Append(ctx, evt("after-break", i+1)); err != nil {
				return fmt.Errorf("round %d: Append: %w", i, err)
			}
		}
		return nil
	})
	wantStream(t, j, "after-break", 50, seqRange(1, 50))
	wantStream(t, j, pid, 100, seqRange(1, 100))
}

// The loop body of a Replay may use the same journal: no lock or
// connection the iteration holds may block other operations.
func testReplayCallsInsideLoop(t *testing.T, j journal.Journal) {
	const outer, inner = "outer", "inner"
	mustAppend(t, j, evts(outer, 1, 5)...)
	ctx := t.Context()
	var seen []uint64
	within(t, "calling the journal inside a Replay loop", func() error {
		for ev, err := range j.Replay(ctx, outer, 1, 5, math.MaxUint64) {
			if err != nil {
				return fmt.Errorf("outer Replay: %w", err)
			}
			seq := ev.SequenceNr
			seen = append(seen, seq)
			if err := j.Append(ctx, evt(inner, seq), evt(outer, 100+seq)); err != nil {
				return fmt.Errorf("inside the loop: Append: %w", err)
			}
			if h, err := j.HighestSequenceNr(ctx, outer); err != nil || h != 100+seq {
				return fmt.Errorf("inside the loop: HighestSequenceNr = %d, %v; want %d", h, err, 100+seq)
			}
			if last, ok, err := j.Last(ctx, inner); err != nil || !ok || last.SequenceNr != seq {
				return fmt.Errorf("inside the loop: Last = %d, %v, %v; want %d", last.SequenceNr, ok, err, seq)
			}
			nested, err := Collect(j.Replay(ctx, inner, 1, math.MaxUint64, math.MaxUint64))
			if err != nil || uint64(len(nested)) != seq {
				return fmt.Errorf("inside the loop: nested Replay yielded %d events, %v; want %d", len(nested), err, seq)
			}
			if err := j.DeleteTo(ctx, inner, 0); err != nil {
				return fmt.Errorf("inside the loop: DeleteTo: %w", err)
			}
		}
		return nil
	})
	if fmt.Sprint(seen) != "[1 2 3 4 5]" {
		t.Fatalf("outer Replay yielded %v, want [1 2 3 4 5]", seen)
	}
	wantStream(t, j, inner, 5, seqRange(1, 5))
	wantStream(t, j, outer, 105, []uint64{1, 2, 3, 4, 5, 101, 102, 103, 104, 105})
}

func testReplayLarge(t *testing.T, j journal.Journal) {
	const pid = "large"
	const n, batch = 5000, 500
	for from := uint64(1); from <= n; from += batch {
		mustAppend(t, j, evts(pid, from, from+batch-1)...)
	}
	wantHighest(t, j, pid, n)

	next := uint64(1)
	for ev, err := range j.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			t.Fatalf("Replay after %d events: %v", next-1, err)
		}
		if ev.SequenceNr != next {
			t.Fatalf("Replay yielded %d, want %d", ev.SequenceNr, next)
		}
		if !bytes.Equal(ev.Payload, payloadFor(pid, next)) {
			t.Fatalf("event %d has payload %q", next, ev.Payload)
		}
		next++
	}
	if next-1 != n {
		t.Fatalf("Replay yielded %d events, want %d", next-1, n)
	}
	wantSeqs(t, "Replay(2501, end, max 1000)", replay(t, j, pid, 2501, math.MaxUint64, 1000), seqRange(2501, 3500))
	wantSeqs(t, "Replay(4990, end)", replay(t, j, pid, 4990, math.MaxUint64, math.MaxUint64), seqRange(4990, 5000))
}
