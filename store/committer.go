package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

const (
	// DefaultCommitEvery is how many marks start a save by default.
	DefaultCommitEvery = 1000
	// DefaultCommitInterval is how long after the end of the last save
	// marks wait at most before the next one starts, by default.
	DefaultCommitInterval = time.Second
	// DefaultSaveTimeout bounds one save of a committer by default.
	DefaultSaveTimeout = 30 * time.Second
	// MaxCommitRetryDelay caps the delay between two attempts of a failing
	// save, unless the commit interval is longer.
	MaxCommitRetryDelay = 30 * time.Second
)

// ErrClosed is returned by every call on a Committer after Close.
var ErrClosed = errors.New("store: committer closed")

// ErrTrackBehind is matched by the error of Track for a sequence number at
// or below one already marked for the key: the committer may already have
// saved past it, and a save cannot be taken back. Nothing changes; the
// committer goes on.
var ErrTrackBehind = errors.New("store: committer: track at or below a sequence number already marked")

// CommitterOption configures NewCommitter.
type CommitterOption func(*committerConfig)

type committerConfig struct {
	every       int
	interval    time.Duration
	saveTimeout time.Duration
}

// WithCommitEvery starts a save once n marks have been made since the last
// one started. n must be at least 1. Defaults to DefaultCommitEvery (1000).
func WithCommitEvery(n int) CommitterOption { return func(c *committerConfig) { c.every = n } }

// WithCommitInterval starts a save when d has passed since the end of the
// last one (or since NewCommitter) and something is waiting to be saved.
// It bounds how long a mark waits when marks are few. d must be positive.
// Defaults to DefaultCommitInterval (1s).
func WithCommitInterval(d time.Duration) CommitterOption {
	return func(c *committerConfig) { c.interval = d }
}

// WithSaveTimeout bounds each save, so that a save hung on a dead
// connection fails and is retried instead of stopping the committer. d must
// be positive. Defaults to DefaultSaveTimeout (30s).
func WithSaveTimeout(d time.Duration) CommitterOption {
	return func(c *committerConfig) { c.saveTimeout = d }
}

func (c *committerConfig) validate() error {
	if c.every < 1 {
		return fmt.Errorf("%w: commit every %d marks is below 1", ErrInvalidOption, c.every)
	}
	if c.interval <= 0 {
		return fmt.Errorf("%w: commit interval %v is not positive", ErrInvalidOption, c.interval)
	}
	if c.saveTimeout <= 0 {
		return fmt.Errorf("%w: save timeout %v is not positive", ErrInvalidOption, c.saveTimeout)
	}
	return nil
}

// Committer saves a relay's progress in the background: the relay marks
// each event done with Mark, cheaply and without waiting, and the committer
// coalesces the marks into saves of the store, at most one at a time.
//
// Saves start when WithCommitEvery marks have been made or
// WithCommitInterval has passed since the last save, whichever comes
// first. Marks made while a save is in flight go into the next one. Only
// keys whose committable offset changed since the last save are given to
// Store.Save, so the cost of a save follows the keys that moved. Fencing,
// adoption of lost acknowledgements, retention and durability are the
// store's.
//
// # Out-of-order completion
//
// A relay that publishes asynchronously calls Track(key, seq) before it
// publishes and Mark(key, seq) when the publish is acknowledged. The
// committed offset of a key is then the highest marked sequence number
// below its lowest tracked one that is not marked yet: a save never passes
// an event still in flight, whatever order the acknowledgements come in.
// Without Track, Mark is a plain high-water mark.
//
// # Errors
//
// A failed save is retried, and Err reports its error until a save
// succeeds. A retry waits for the next trigger, and at least the commit
// interval doubled for every consecutive failure after the first (1×, 2×,
// 4× … the interval), capped at MaxCommitRetryDelay or the interval if it
// is longer. Flush and Close do not wait for the delay.
//
// ErrFenced, and every other error a retry cannot cure (ErrInvalidKey,
// ErrSequenceOverflow, ErrCorruptSnapshot, journal.ErrInvalidArgument),
// stops the committer: that error is returned by every later Mark, Track,
// Flush, Close and Err. The relay should stop and open the outbox again.
//
// # Memory
//
// A committer holds one small entry per key it has seen, plus the tracked
// sequence numbers not yet marked, which are released as they are marked.
// Marks of a key cost no memory beyond its entry.
//
// A Committer is safe for concurrent use. Close it: a Committer that
// becomes unreachable without Close stops its goroutine, and what it had
// not saved is lost, as in a crash. A handle is reachable while one of its
// methods runs, so a Close or Flush that is the handle's last use is never
// cut short by that cleanup.
type Committer struct {
	c *committer
}

// committer is the state shared by the handle and the background
// goroutine. It never refers to the handle, so that a dropped handle can be
// collected and its cleanup stop the goroutine.
type committer struct {
	s   *Store
	cfg committerConfig

	ctx    context.Context // cancelled to abandon the goroutine
	cancel context.CancelFunc

	kick    chan struct{}   // a save is due by count
	flushes chan chan error // Flush requests
	closing chan struct{}   // closed by Close
	done    chan struct{}   // closed when the goroutine has returned

	mu      sync.Mutex
	keys    map[string]*keyState
	dirty   []*keyState // keys whose committable offset moved since the last snapshot
	marks   int         // marks since the last snapshot
	pending int         // tracked sequence numbers not yet marked
	stopErr error       // returned by every call: ErrClosed or the permanent error
	saveErr error       // the last save's error, nil after a success
	closed  bool
	stats   CommitterStats
	// Set by the goroutine as it returns: its outcome (nil, a permanent
	// error or errAbandoned) and the keys it left unsaved.
	closeErr error
	unsaved  int
}

// CommitterStats counts what a committer did and holds.
type CommitterStats struct {
	// Saves is the number of successful saves that named at least one key.
	Saves int64
	// SavedKeys is the number of keys given to those saves, summed: only
	// keys whose committable offset moved are given to a save.
	SavedKeys int64
	// SaveErrors is the number of failed save attempts.
	SaveErrors int64
	// Keys is the number of keys the committer has seen.
	Keys int
	// Pending is the number of tracked sequence numbers not yet marked.
	Pending int
	// Unsaved is the number of keys whose committable offset is not yet
	// saved: those waiting for the next save plus those in the save in
	// flight or last failed (a key may count in both).
	Unsaved int
}

// NewCommitter starts a committer that saves into s. An option out of range
// fails with ErrInvalidOption. Close the committer to save what is marked
// and stop its goroutine.
func NewCommitter(s *Store, opts ...CommitterOption) (*Committer, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: store is nil", ErrInvalidOption)
	}
	cfg := committerConfig{every: DefaultCommitEvery, interval: DefaultCommitInterval, saveTimeout: DefaultSaveTimeout}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &committer{
		s:       s,
		cfg:     cfg,
		ctx:     ctx,
		cancel:  cancel,
		kick:    make(chan struct{}, 1),
		flushes: make(chan chan error),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		keys:    map[string]*keyState{},
	}
	go in.run()
	c := &Committer{c: in}
	runtime.AddCleanup(c, func(in *committer) { in.cancel() }, in)
	return c, nil
}

// Mark records that seq of key is done. It does no I/O, never waits for a
// save, and allocates nothing for a key seen before. Offsets are monotonic:
// a seq at or below the key's committable offset is ignored. When seq is
// tracked, it stops holding the key back; when it is not, and a lower
// tracked seq is still pending, seq is remembered and becomes committable
// once every pending seq below it is marked.
//
// A key that is not valid fails with an error matching ErrInvalidKey, and
// nothing is recorded. After Close, Mark returns ErrClosed; after a
// permanent save error, that error.
func (c *Committer) Mark(key string, seq uint64) error {
	in := c.c
	in.mu.Lock()
	if in.stopErr != nil {
		err := in.stopErr
		in.mu.Unlock()
		return err
	}
	ks := in.keys[key]
	if ks == nil {
		var err error
		if ks, err = in.newKey(key); err != nil {
			in.mu.Unlock()
			return err
		}
	}
	old := ks.done
	if changed, completed := ks.mark(seq); changed {
		ks.top = max(ks.top, seq)
		if completed {
			in.pending--
		}
		if ks.done != old && !ks.dirty {
			ks.dirty = true
			in.dirty = append(in.dirty, ks)
		}
		in.marks++
		if in.marks == in.cfg.every {
			select {
			case in.kick <- struct{}{}:
			default:
			}
		}
	}
	in.mu.Unlock()
	return nil
}

// Track records that seq of key is in flight: until Mark(key, seq), no save
// of key reaches seq. Track must come before any Mark of key at seq or
// above (track before publishing); a seq at or below one already marked
// for key fails with an error matching ErrTrackBehind and changes nothing.
// Tracking a seq that is already pending does nothing.
//
// A key that is not valid fails with an error matching ErrInvalidKey. After
// Close, Track returns ErrClosed; after a permanent save error, that error.
func (c *Committer) Track(key string, seq uint64) error {
	in := c.c
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopErr != nil {
		return in.stopErr
	}
	ks := in.keys[key]
	if ks == nil {
		var err error
		if ks, err = in.newKey(key); err != nil {
			return err
		}
	}
	if seq <= ks.top {
		return fmt.Errorf("%w: key %s seq %d, highest marked %d", ErrTrackBehind, quoteShort(key), seq, ks.top)
	}
	if ks.track(seq) {
		in.pending++
	}
	return nil
}

// Flush saves everything marked before the call and returns once it is
// durable. It does not wait for a retry delay. When the save fails, Flush
// returns its error and the committer retries it as usual; when ctx ends
// first, Flush returns ctx's error and the save goes on in the background.
func (c *Committer) Flush(ctx context.Context) error {
	// The handle stays reachable until Flush returns: its cleanup, which
	// abandons the goroutine of a dropped committer, must not cancel the
	// save this call waits for when the call is the handle's last use.
	defer runtime.KeepAlive(c)
	in := c.c
	in.mu.Lock()
	err := in.stopErr
	in.mu.Unlock()
	if err != nil {
		return err
	}
	reply := make(chan error, 1)
	select {
	case in.flushes <- reply:
	case <-in.done:
		return in.stoppedErr()
	case <-ctx.Done():
		return fmt.Errorf("store: committer flush: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("store: committer flush: %w", ctx.Err())
	}
}

// Close saves everything marked, retrying a failing save with the usual
// delays, and stops the committer. It returns nil once everything marked
// is durable. When ctx ends first, Close stops the committer anyway and
// returns an error that wraps ctx's error and says how many keys were left
// unsaved. Every call after Close returns ErrClosed, a second Close
// included; after a permanent save error, every call, Close included,
// returns that error.
func (c *Committer) Close(ctx context.Context) error {
	defer runtime.KeepAlive(c) // as in Flush: the final save is this call's
	in := c.c
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		<-in.done
		return in.stoppedErr()
	}
	in.closed = true
	perm := in.stopErr
	if perm == nil {
		in.stopErr = ErrClosed
	}
	in.mu.Unlock()
	if perm != nil {
		in.cancel()
		<-in.done
		return perm
	}
	close(in.closing)
	select {
	case <-in.done:
	case <-ctx.Done():
		in.cancel()
		<-in.done
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closeErr == errAbandoned {
		return fmt.Errorf("store: committer close: %d keys not saved: %w", in.unsaved, errors.Join(ctx.Err(), in.saveErr))
	}
	return in.closeErr
}

// errAbandoned is the outcome of a goroutine stopped before its final save
// succeeded.
var errAbandoned = errors.New("store: committer abandoned")

// Err returns the error of the last save when it failed, and nil once a
// save succeeds. After a permanent error it returns that error; after
// Close, ErrClosed.
func (c *Committer) Err() error {
	in := c.c
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopErr != nil {
		return in.stopErr
	}
	return in.saveErr
}

// Stats returns counters of what the committer did, and what it holds.
func (c *Committer) Stats() CommitterStats {
	in := c.c
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.stats
	st.Keys = len(in.keys)
	st.Pending = in.pending
	st.Unsaved += len(in.dirty)
	return st
}
