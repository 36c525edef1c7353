package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

// The background goroutine of a Committer: when to save, retries, and the
// final save at Close.

// run is the background goroutine: it saves when a trigger fires, and
// finally when the committer closes.
func (in *committer) run() {
	defer close(in.done)
	batch := map[string]uint64{} // the next save; kept across failures
	failures := 0
	timer := time.NewTimer(in.cfg.interval)
	defer timer.Stop()
	var waiters []chan error
	for {
		select {
		case <-in.ctx.Done():
			in.finish(errAbandoned, batch)
			return
		case <-in.closing:
			in.finish(in.closeLoop(batch, failures), batch)
			return
		case <-timer.C:
		case <-in.kick:
			if failures > 0 {
				continue // the timer fires when the retry delay is over
			}
		case w := <-in.flushes:
			waiters = append(waiters, w)
		}
		// Flush requests that arrived meanwhile share this save.
		for more := true; more; {
			select {
			case w := <-in.flushes:
				waiters = append(waiters, w)
			default:
				more = false
			}
		}
		err := in.save(batch)
		for _, w := range waiters {
			w <- err
		}
		clear(waiters)
		waiters = waiters[:0]
		if permanent(err) {
			in.finish(err, batch)
			return
		}
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		timer.Reset(in.retryDelay(failures))
		// Marks that reached the count during the save start the next one
		// at once; their kick may have been taken already.
		in.mu.Lock()
		due := in.marks >= in.cfg.every && failures == 0
		in.mu.Unlock()
		if due {
			select {
			case in.kick <- struct{}{}:
			default:
			}
		}
	}
}

// closeLoop saves until everything is durable, a permanent error, or the
// committer is abandoned (Close's ctx ended).
func (in *committer) closeLoop(batch map[string]uint64, failures int) error {
	for {
		err := in.save(batch)
		if err == nil || permanent(err) {
			return err
		}
		failures++
		t := time.NewTimer(in.retryDelay(failures))
		select {
		case <-in.ctx.Done():
			t.Stop()
			return errAbandoned
		case <-t.C:
		}
	}
}

// finish records the goroutine's outcome and what it leaves unsaved.
func (in *committer) finish(err error, batch map[string]uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closeErr = err
	in.unsaved = len(batch)
	for _, ks := range in.dirty {
		if _, ok := batch[ks.key]; !ok {
			in.unsaved++
		}
	}
}

// stoppedErr is the error of a call that found the goroutine gone.
func (in *committer) stoppedErr() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopErr != nil {
		return in.stopErr
	}
	return ErrClosed
}

// retryDelay is the wait before the next save after failures consecutive
// failed ones: the commit interval, doubled per failure after the first.
func (in *committer) retryDelay(failures int) time.Duration {
	d := in.cfg.interval
	limit := max(MaxCommitRetryDelay, d)
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// save moves the dirty keys into batch and saves it. batch is cleared on
// success and kept on failure, so the next attempt saves it again with
// whatever moved since.
func (in *committer) save(batch map[string]uint64) error {
	in.mu.Lock()
	for i, ks := range in.dirty {
		batch[ks.key] = ks.done
		ks.dirty = false
		in.dirty[i] = nil
	}
	in.dirty = in.dirty[:0]
	in.marks = 0
	in.stats.Unsaved = len(batch)
	in.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(in.ctx, in.cfg.saveTimeout)
	err := in.s.Save(ctx, batch)
	cancel()
	in.mu.Lock()
	defer in.mu.Unlock()
	if err != nil {
		in.stats.SaveErrors++
		in.saveErr = err
		if permanent(err) {
			in.stopErr = fmt.Errorf("store: committer stopped: %w", err)
			return in.stopErr
		}
		return err
	}
	in.stats.SavedKeys += int64(len(batch))
	clear(batch)
	in.stats.Saves++
	in.stats.Unsaved = 0
	in.saveErr = nil
	return nil
}

// permanent reports whether err is one no retry can cure.
func permanent(err error) bool {
	return err != nil && (errors.Is(err, ErrFenced) || errors.Is(err, ErrOpenedSnapshotLost) || errors.Is(err, ErrInvalidKey) ||
		errors.Is(err, ErrSequenceOverflow) || errors.Is(err, ErrCorruptSnapshot) ||
		errors.Is(err, codec.ErrCorrupt) || errors.Is(err, journal.ErrInvalidArgument) ||
		errors.Is(err, codec.ErrTooManyKeys) || errors.Is(err, codec.ErrTooLarge))
}
