package journaltest

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunConcurrency checks the journal under concurrent use: racing appends of
// one (PersistenceID, SequenceNr) have exactly one winner, appends to
// distinct positions all land, and readers never see part of a batch.
func RunConcurrency(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"SamePositionOneWinner", testConcurrentSamePosition},
		{"DistinctPositions", testConcurrentDistinct},
		{"ReadersSeeWholeBatches", testConcurrentReaders},
	})
}

func testConcurrentSamePosition(t *testing.T, j journal.Journal) {
	const pid, writers = "contended", 16
	ctx := t.Context()
	start := make(chan struct{})
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			errs[w] = j.Append(ctx, journal.Event{
				PersistenceID: pid,
				SequenceNr:    1,
				Payload:       fmt.Appendf(nil, "payload of writer %d", w),
				WriterUUID:    fmt.Sprintf("writer-%d", w),
			})
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for w, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both appended (%q, 1)", winner, w, pid)
		case err == nil:
			winner = w
		default:
			wantConflict(t, err, pid, 1)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer appended (%q, 1)", pid)
	}
	wantHighest(t, j, pid, 1)
	last := wantLast(t, j, pid, 1)
	if want := fmt.Sprintf("writer-%d", winner); last.WriterUUID != want {
		t.Fatalf("stored row has WriterUUID %q, want the winner's %q", last.WriterUUID, want)
	}
	if want := fmt.Sprintf("payload of writer %d", winner); string(last.Payload) != want {
		t.Fatalf("stored row has payload %q, want the winner's %q", last.Payload, want)
	}
}

func testConcurrentDistinct(t *testing.T, j journal.Journal) {
	const writers, batches, perBatch = 8, 25, 4
	ctx := t.Context()
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range uint64(writers) {
		wg.Go(func() {
			own := fmt.Sprintf("writer-%d", w)
			for b := range uint64(batches) {
				first := b*perBatch + 1
				batch := evts(own, first, first+perBatch-1)
				// All writers share one stream too, at disjoint positions.
				batch = append(batch, evt("shared", w*batches+b+1))
				if err := j.Append(ctx, batch...); err != nil {
					errs <- fmt.Errorf("writer %d, batch %d: %w", w, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		wantStream(t, j, fmt.Sprintf("writer-%d", w), batches*perBatch, seqRange(1, batches*perBatch))
	}
	wantStream(t, j, "shared", writers*batches, seqRange(1, writers*batches))
}

// Each Append is atomic for readers too: a reader running beside a writer
// sees every batch whole or not at all.
func testConcurrentReaders(t *testing.T, j journal.Journal) {
	const pid, batches, perBatch, readers = "live", 20, 10, 4
	ctx := t.Context()
	done := make(chan struct{})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failure error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failure = errors.Join(failure, err)
	}
	wg.Go(func() {
		defer close(done)
		for b := range uint64(batches) {
			if err := j.Append(ctx, evts(pid, b*perBatch+1, (b+1)*perBatch)...); err != nil {
				fail(fmt.Errorf("writer, batch %d: %w", b, err))
				return
			}
		}
	})
	for r := range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				events, err := Collect(j.Replay(ctx, pid, 1, math.MaxUint64, math.MaxUint64))
				if err != nil {
					fail(fmt.Errorf("reader %d: Replay: %w", r, err))
					return
				}
				if problem := checkReplay(events, pid, 1, math.MaxUint64, math.MaxUint64); problem != "" {
					fail(fmt.Errorf("reader %d: Replay: %s", r, problem))
					return
				}
				if n := len(events); n%perBatch != 0 || (n > 0 && events[n-1].SequenceNr != uint64(n)) {
					fail(fmt.Errorf("reader %d: Replay saw %d events ending at %v: part of a batch", r, n, seqsOf(events[max(n-1, 0):])))
					return
				}
				h, err := j.HighestSequenceNr(ctx, pid)
				if err != nil || h%perBatch != 0 {
					fail(fmt.Errorf("reader %d: HighestSequenceNr = %d, %v: part of a batch", r, h, err))
					return
				}
				if last, ok, err := j.Last(ctx, pid); err != nil || (ok && last.SequenceNr%perBatch != 0) {
					fail(fmt.Errorf("reader %d: Last = %d, %v: part of a batch", r, last.SequenceNr, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	wantStream(t, j, pid, batches*perBatch, seqRange(1, batches*perBatch))
}
