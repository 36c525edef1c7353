package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outboxkit/offsetstore/store"
)

// ErrSaveFailing is matched by the error of Run when no save of the
// offsets succeeded for longer than Config.MaxSaveFailure while published
// events waited to be saved (a *SaveFailureError).
var ErrSaveFailing = errors.New("relay: the offsets cannot be saved")

// SaveFailureError is the error of Run after the saves of the offsets
// failed, or hung, for longer than Config.MaxSaveFailure. It matches
// ErrSaveFailing and unwraps to the last save's error.
type SaveFailureError struct {
	// Outbox is the relay's outbox.
	Outbox string
	// Since is when the saves last kept up: the last successful save, or
	// the moment events began to wait with nothing left to save before.
	Since time.Time
	// For is how long no save had succeeded when the relay gave up: more
	// than Config.MaxSaveFailure.
	For time.Duration
	// Unsaved is the number of events published and not saved (the
	// next leader publishes them again).
	Unsaved int64
	// Err is the last failed save's error; nil when the saves hung
	// without failing (a lock held by a writer whose connection vanished,
	// say) until the bound.
	Err error
}

func (e *SaveFailureError) Error() string {
	cause := "saves hang"
	if e.Err != nil {
		cause = e.Err.Error()
	}
	return fmt.Sprintf("relay: outbox %q: no save of the offsets succeeded for %v, %d events published and not saved: %s",
		e.Outbox, e.For.Round(time.Millisecond), e.Unsaved, cause)
}

// Is reports whether target is ErrSaveFailing.
func (e *SaveFailureError) Is(target error) bool { return target == ErrSaveFailing }

// Unwrap returns the last save's error.
func (e *SaveFailureError) Unwrap() error { return e.Err }

// window bounds what one session of a committer leaves unsaved: the events
// published and not yet known to be saved (at most Config.MaxUnsaved
// before publishing pauses), and the time without a successful save while
// events wait (at most Config.MaxSaveFailure before Run gives up). It
// reports the saves' errors through the relay's logger and Stats.
//
// Known saved, without a pause, while the committer keeps up: everything
// marked before a look at the committer's Stats that found n saves, once it
// has made n+2 (save n+1 may have begun before the look; save n+2 began
// after it, with every key marked before it, and succeeded), or that found
// nothing unsaved. Both need that nothing was in flight at the look (with
// PublishAsync an event acked above one still in flight is not
// committable, so not saved); with Publish nothing ever is. In a pause:
// everything marked before a Flush that returned nil, once the acks in
// flight came (drain).
type window struct {
	r     *Relay
	c     *store.Committer
	drain func(context.Context) error // waits for the acks in flight; nil without PublishAsync

	marked atomic.Int64 // events marked in this session
	saved  atomic.Int64 // of those, how many are known saved
	tick   atomic.Uint32

	mu        sync.Mutex
	saves     int64     // the committer's Stats().Saves at the last look
	look      look      // a look whose marks wait for their save
	keptUp    time.Time // the saves last kept up (see SaveFailureError.Since)
	failing   bool      // a failure was logged and no save succeeded since
	lastError error
}

// look is what a look at the committer found: marked events and saves.
type look struct {
	marked, saves int64
	ok            bool
}

func newWindow(r *Relay, c *store.Committer, drain func(context.Context) error) *window {
	return &window{r: r, c: c, drain: drain, keptUp: time.Now()}
}

// unsaved is the number of events published and not known saved.
func (w *window) unsaved() int64 { return w.marked.Load() - w.saved.Load() }

// done records one more event marked on the committer.
func (w *window) done() { w.marked.Add(1) }

// checkEvery is how many events admit lets through between two looks at
// the committer.
const checkEvery = 64

// admit is called before each event is published: it returns at once
// while the window has room, and otherwise pauses until what was
// published is saved. It fails when ctx ends, the committer stops, or the
// saves failed for longer than MaxSaveFailure.
func (w *window) admit(ctx context.Context) error {
	if w.tick.Add(1)%checkEvery == 0 {
		if err := w.check(); err != nil {
			return err
		}
	}
	if w.unsaved() < int64(w.r.cfg.MaxUnsaved) {
		return nil
	}
	return w.pause(ctx)
}

// pause stops publishing until every event published is saved: it waits
// for the acks in flight, then flushes the committer, again every
// CommitInterval while the flush fails, until it succeeds or the failure
// bound is reached.
func (w *window) pause(ctx context.Context) error {
	w.r.paused.Add(1)
	w.r.log.Warn("relay: publishing paused: too many events published and not saved",
		"outbox", w.r.cfg.Outbox, "unsaved", w.unsaved(), "max_unsaved", w.r.cfg.MaxUnsaved)
	began := time.Now()
	backoff := w.r.cfg.CommitInterval
	for {
		if w.drain != nil {
			if err := w.drain(ctx); err != nil {
				return err
			}
		}
		marked := w.marked.Load()
		fctx, cancel := context.WithTimeout(ctx, w.flushBound())
		err := w.c.Flush(fctx)
		cancel()
		if err == nil {
			w.setSaved(marked)
			_ = w.check() // takes the successful save in; it cannot fail now
			w.r.log.Info("relay: publishing resumed", "outbox", w.r.cfg.Outbox, "paused", time.Since(began).Round(time.Millisecond))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrClosed) {
			return err // the committer has stopped
		}
		if err := w.check(); err != nil {
			return err
		}
		// The next try after a delay that doubles, as the committer's
		// retries do, but not past the failure bound.
		t := time.NewTimer(min(backoff, max(w.untilBound(), time.Millisecond)))
		backoff = min(2*backoff, max(store.MaxCommitRetryDelay, w.r.cfg.CommitInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// flushBound is how long one flush of a pause may take: the time left
// before the failure bound, at least a commit interval.
func (w *window) flushBound() time.Duration {
	return max(w.untilBound(), w.r.cfg.CommitInterval)
}

// untilBound is the time left before the failure bound is reached, if no
// save succeeds meanwhile.
func (w *window) untilBound() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Until(w.keptUp.Add(w.r.cfg.MaxSaveFailure))
}

// setSaved records that the first n events marked are saved.
func (w *window) setSaved(n int64) {
	for {
		old := w.saved.Load()
		if n <= old || w.saved.CompareAndSwap(old, n) {
			return
		}
	}
}

// check looks at the committer: it takes in the saves that succeeded,
// logs and records a save's error, and returns a *SaveFailureError once no
// save has succeeded for longer than MaxSaveFailure while events wait.
func (w *window) check() error {
	marked := w.marked.Load() // before Stats: those marks are in it
	st := w.c.Stats()
	saveErr := w.c.Err()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if st.Unsaved == 0 && st.Pending == 0 {
		// Nothing waits for a save: the window is empty.
		w.setSaved(marked)
		w.keptUp = now
	}
	if st.Saves != w.saves {
		w.saves = st.Saves
		w.keptUp = now
	}
	if w.look.ok && st.Saves >= w.look.saves+2 {
		w.setSaved(w.look.marked)
		w.look.ok = false
	}
	if !w.look.ok && st.Pending == 0 {
		w.look = look{marked: marked, saves: st.Saves, ok: true}
	}
	if errors.Is(saveErr, store.ErrClosed) {
		saveErr = nil
	}
	switch {
	case saveErr != nil:
		w.lastError = saveErr
		w.r.setLastSaveError(saveErr)
		if !w.failing {
			w.failing = true
			w.r.log.Warn("relay: saving the offsets fails; the committer retries",
				"outbox", w.r.cfg.Outbox, "err", saveErr, "unsaved", w.unsaved(), "max_save_failure", w.r.cfg.MaxSaveFailure)
		}
	case w.failing:
		w.failing = false
		w.lastError = nil
		w.r.setLastSaveError(nil)
		w.r.log.Info("relay: saving the offsets works again", "outbox", w.r.cfg.Outbox, "unsaved", w.unsaved())
	}
	if now.Sub(w.keptUp) > w.r.cfg.MaxSaveFailure {
		return &SaveFailureError{Outbox: w.r.cfg.Outbox, Since: w.keptUp, For: now.Sub(w.keptUp), Unsaved: w.unsaved(), Err: w.lastError}
	}
	return nil
}
