package store

import (
	"errors"
	"time"
)

// Outcome is how one write call of a store ended, as an observer is told
// (see WithObserver). Its values are the words metrics use.
type Outcome string

const (
	// OutcomeOK: the snapshot row is committed.
	OutcomeOK Outcome = "ok"
	// OutcomeAdopted: committed, and on the way an earlier write of this
	// store whose acknowledgement was lost was found committed and
	// adopted.
	OutcomeAdopted Outcome = "adopted"
	// OutcomeFenced: another writer owns the outbox (ErrFenced).
	OutcomeFenced Outcome = "fenced"
	// OutcomeInDoubt: the write's outcome is unknown (ErrInDoubt); the
	// next write settles it.
	OutcomeInDoubt Outcome = "in_doubt"
	// OutcomeError: any other error; nothing of the call is recorded.
	OutcomeError Outcome = "error"
)

// WriteEvent describes one write call of a store: a Save, SaveTx,
// Rewind, Forget or Replace that wrote a snapshot row or failed. A call
// that changes nothing and writes nothing is not reported.
type WriteEvent struct {
	// Outbox is the store's outbox name.
	Outbox string
	// Op names the call: "save", "save in transaction", "rewind",
	// "forget" or "replace".
	Op string
	// Outcome is how the call ended.
	Outcome Outcome
	// Duration is the time from the call's start to its return.
	Duration time.Duration
	// Bytes is the payload size of the last row the call sent, 0 when it
	// sent none.
	Bytes int
	// Kind is the kind of that row.
	Kind RowKind
	// SequenceNr is that row's sequence number, 0 when none was sent.
	SequenceNr uint64
	// Err is the call's error (nil for OutcomeOK and OutcomeAdopted).
	// Metrics must not label by it: its text names keys and numbers.
	Err error
}

// WithObserver calls fn after every write call of the store that wrote a
// row or failed, with what happened (see WriteEvent), on the goroutine of
// the call, before the call returns. fn must be quick and must not call
// the store. It is how metrics are recorded without a dependency of this
// package (the offsetstoreotel module records OpenTelemetry instruments
// from it). Defaults to none.
func WithObserver(fn func(WriteEvent)) Option { return func(c *config) { c.observe = fn } }

// observed is the state of one write call for its observer.
type observed struct {
	start   time.Time
	adopted int64 // Stats.Adopted at the start
	sent    *write
}

// startObserving records the start of a write call; nil when the store
// has no observer, so that a call without one pays nothing.
func (s *Store) startObserving() *observed {
	if s.cfg.observe == nil {
		return nil
	}
	s.mu.RLock()
	adopted := s.stats.Adopted
	s.mu.RUnlock()
	return &observed{start: time.Now(), adopted: adopted}
}

// finish tells the observer how the call op ended with err.
func (s *Store) finishObserving(o *observed, op string, err error) {
	if o == nil || (err == nil && o.sent == nil) {
		return
	}
	ev := WriteEvent{Outbox: s.outbox, Op: op, Duration: time.Since(o.start), Err: err}
	if o.sent != nil {
		ev.Bytes, ev.Kind, ev.SequenceNr = len(o.sent.ev.Payload), o.sent.kind, o.sent.seq
	}
	s.mu.RLock()
	adopted := s.stats.Adopted > o.adopted
	s.mu.RUnlock()
	switch {
	case err == nil && adopted:
		ev.Outcome = OutcomeAdopted
	case err == nil:
		ev.Outcome = OutcomeOK
	case errors.Is(err, ErrFenced):
		ev.Outcome = OutcomeFenced
	case errors.Is(err, ErrInDoubt):
		ev.Outcome = OutcomeInDoubt
	default:
		ev.Outcome = OutcomeError
	}
	s.cfg.observe(ev)
}

// held samples the store's adoptions once the call holds the writer's
// semaphore: only what happens from there on is the call's.
func (o *observed) held(s *Store) {
	if o != nil {
		s.mu.RLock()
		o.adopted = s.stats.Adopted
		s.mu.RUnlock()
	}
}

// sending records w as the row the observed call sends.
func (o *observed) sending(w *write) {
	if o != nil {
		o.sent = w
	}
}
