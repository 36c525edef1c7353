package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
	"github.com/outboxkit/offsetstore/store"
)

// PublishError is the error of Run after a failed publish.
type PublishError struct {
	PersistenceID string
	SequenceNr    uint64
	Err           error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("relay: publish %q seq %d: %v", e.PersistenceID, e.SequenceNr, e.Err)
}

// Unwrap returns the publisher's error.
func (e *PublishError) Unwrap() error { return e.Err }

// Relay is one relay process of an outbox. Run it with Run.
type Relay struct {
	cfg    Config
	j      journal.Journal
	lister journal.StreamLister
	// The feed and the reads of many streams, when the journal has both
	// (feed.go); nil otherwise (heads.go).
	feed    journal.FeedReader
	streams journal.StreamsReader
	buf     []journal.Event // the events of a read, reused by the follow loop

	log *slog.Logger

	leaderships, published, saves, reopens, fenced, idle atomic.Int64
	paused, txSaveErrors                                 atomic.Int64
	passes, read, sweeps                                 atomic.Int64
	opened, snapshot                                     atomic.Uint64

	mu         sync.Mutex
	committer  *store.Committer // the live one, for Stats
	window     *window          // the live committer's
	saved      int64            // saves of the committers already closed
	saveErrors int64            // failed saves of the committers already closed
	unsavedEnd int64            // Stats.Unsaved of the last session, once ended
	lastErr    error            // Stats.LastSaveError
}

// New validates cfg and fills in its defaults.
func New(cfg Config) (*Relay, error) {
	modes := 0
	for _, set := range []bool{cfg.Publish != nil, cfg.PublishAsync != nil, cfg.PublishTx != nil} {
		if set {
			modes++
		}
	}
	switch {
	case cfg.Pool == nil:
		return nil, fmt.Errorf("%w: Pool is nil", ErrInvalidConfig)
	case modes != 1:
		return nil, fmt.Errorf("%w: set exactly one of Publish, PublishAsync and PublishTx (%d set)", ErrInvalidConfig, modes)
	case cfg.MaxInFlight < 0 || cfg.BatchSize < 0 || cfg.CommitEvery < 0 || cfg.MaxUnsaved < 0:
		return nil, fmt.Errorf("%w: MaxInFlight, BatchSize, CommitEvery and MaxUnsaved must not be negative", ErrInvalidConfig)
	case cfg.PollInterval < 0 || cfg.DiscoverEvery < 0 || cfg.SweepEvery < 0 || cfg.CloseTimeout < 0 || cfg.CommitInterval < 0 || cfg.MaxSaveFailure < 0:
		return nil, fmt.Errorf("%w: durations must not be negative", ErrInvalidConfig)
	}
	if err := leader.ValidateOutbox(cfg.Outbox); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cfg.CommitEvery = or(cfg.CommitEvery, store.DefaultCommitEvery)
	cfg.CommitInterval = or(cfg.CommitInterval, store.DefaultCommitInterval)
	cfg.MaxInFlight = or(cfg.MaxInFlight, DefaultMaxInFlight)
	cfg.BatchSize = or(cfg.BatchSize, DefaultBatchSize)
	cfg.PollInterval = or(cfg.PollInterval, DefaultPollInterval)
	cfg.DiscoverEvery = or(cfg.DiscoverEvery, DefaultDiscoverEvery)
	cfg.SweepEvery = or(cfg.SweepEvery, DefaultSweepEvery)
	cfg.CloseTimeout = or(cfg.CloseTimeout, DefaultCloseTimeout)
	cfg.MaxUnsaved = or(cfg.MaxUnsaved, DefaultMaxUnsavedCommits*cfg.CommitEvery)
	cfg.MaxSaveFailure = or(cfg.MaxSaveFailure, DefaultMaxSaveFailure)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Journal == nil {
		cfg.Journal = pgjournal.New(cfg.Pool, cfg.JournalOptions...)
	}
	lister, ok := cfg.Journal.(journal.StreamLister)
	if !ok {
		return nil, fmt.Errorf("%w: the journal %T does not list streams (journal.StreamLister)", ErrInvalidConfig, cfg.Journal)
	}
	r := &Relay{cfg: cfg, j: cfg.Journal, lister: lister, log: log}
	if f, ok := cfg.Journal.(journal.FeedReader); ok {
		if s, ok := cfg.Journal.(journal.StreamsReader); ok {
			r.feed, r.streams = f, s
		}
	}
	return r, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// maxConnectFailures is how many times in a row Run tries to reach the
// database for the leadership before it gives up (about 50 s of waits).
const maxConnectFailures = 30

// Run relays until ctx is cancelled (a graceful shutdown: it returns nil,
// or the error of the final flush) or an error it cannot handle (see the
// package documentation). Run one Run per Relay at a time.
func (r *Relay) Run(ctx context.Context) error {
	connectFailures := 0
	var lost lostSessions
	for {
		// 1. Leadership first; a standby waits here.
		lease, err := leader.Acquire(ctx, r.cfg.Pool, r.cfg.Outbox, r.cfg.LeaderOptions...)
		if err != nil {
			if ctx.Err() != nil {
				return nil // shut down while standing by
			}
			// The database could not be reached: wait and try again, as a
			// standby would, for a while (a server restarting, a loaded
			// machine); other errors (a refused login, a bad name) end Run.
			var ce *pgconn.ConnectError
			if errors.As(err, &ce) && connectFailures < maxConnectFailures {
				connectFailures++
				select {
				case <-time.After(time.Duration(connectFailures) * 100 * time.Millisecond):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return err
		}
		connectFailures = 0
		r.leaderships.Add(1)
		r.log.Info("relay: leading", "outbox", r.cfg.Outbox, "backend_pid", lease.BackendPID())

		savesBefore := r.Stats().Saves
		err = r.lead(ctx, lease)
		if lerr := lease.Err(); errors.Is(lerr, leader.ErrLost) {
			r.log.Warn("relay: leadership lost; publishing stopped", "outbox", r.cfg.Outbox, "err", lerr)
		}

		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CloseTimeout)
		relErr := lease.Release(rctx) // nil for a lease already lost
		cancel()
		if sessionEnded(relErr) {
			// The session ended before Release noticed (terminated, cut):
			// the lock went with it, nothing is left to release.
			relErr = nil
		}
		var fenced *store.FencedError
		switch {
		case ctx.Err() != nil:
			return errors.Join(err, relErr) // shutdown; err is the final flush's
		case errors.As(err, &fenced) && !fenced.ByOperator():
			// Another relay wrote after this one lost its lease, or kept
			// writing without one: stand by again.
			r.log.Warn("relay: fenced by another relay; standing by", "outbox", r.cfg.Outbox, "err", err)
		case serverLost(err) && lost.again(ctx, r.Stats().Saves > savesBefore):
			// The database went away (a failover): lead again where the
			// pool reaches now.
			r.log.Warn("relay: the database went away; standing by to lead again", "outbox", r.cfg.Outbox, "err", err)
		case err != nil:
			return errors.Join(err, relErr)
		}
		// The lease was lost or given up: wait for the leadership again.
	}
}

// lead publishes while the lease is held and ctx is not cancelled. It
// returns nil when either ends and the final flush succeeded, and the
// error that ended the leadership otherwise.
func (r *Relay) lead(ctx context.Context, lease *leader.Lease) error {
	// Everything below runs under the lease's context, also cancelled by
	// ctx: a lost lease stops publishing at once.
	lctx, cancel := context.WithCancel(lease.Context())
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	for rivals := 0; ; {
		err := r.session(ctx, lctx, lease)
		var fenced *store.FencedError
		var failed *PublishError
		if !errors.As(err, &fenced) || errors.As(err, &failed) || lctx.Err() != nil {
			return err
		}
		if fenced.ByOperator() {
			// An operator changed the offsets: reopen to load the change.
			r.reopens.Add(1)
			continue
		}
		// Another relay wrote while this one holds the lease: a former
		// leader's last save, landed after this relay opened the store.
		// The lease says who leads, so reopen (loading that save) rather
		// than hand the leadership over. A relay that keeps writing
		// without the lease is misconfigured: after a few, stand by.
		r.fenced.Add(1)
		if rivals++; rivals > maxRivalReopens {
			return err
		}
		r.reopens.Add(1)
	}
}

// maxRivalReopens bounds the reopens of one leadership after fencings by
// another relay.
const maxRivalReopens = 3

// session is one opening of the store under the lease: it publishes until
// lctx ends or an error, then closes what it opened.
func (r *Relay) session(ctx, lctx context.Context, lease *leader.Lease) error {
	// 2. The store, opened under the lease.
	opts := r.cfg.StoreOptions
	if r.cfg.Incremental {
		opts = append([]store.Option{store.WithIncremental()}, opts...)
	}
	st, err := store.Open(lctx, r.j, r.cfg.Outbox, opts...)
	if err != nil {
		return r.stopped(lctx, err)
	}
	r.opened.Store(st.SequenceNr())
	r.snapshot.Store(st.SequenceNr())
	defer func() { r.snapshot.Store(st.SequenceNr()) }()
	if r.cfg.PublishTx != nil {
		tx := &txSink{r: r, st: st, bounds: txBounds(lease.SessionTimeout()), retry: txRetry{r: r}}
		return r.stopped(lctx, r.follow(lctx, st, tx))
	}

	c, err := store.NewCommitter(st, store.WithCommitEvery(r.cfg.CommitEvery), store.WithCommitInterval(r.cfg.CommitInterval))
	if err != nil {
		return err
	}
	defer r.watch(c)()
	var sink sink
	var async *asyncSink
	var w *window
	if r.cfg.PublishAsync != nil {
		async = &asyncSink{r: r, c: c, slots: make(chan struct{}, r.cfg.MaxInFlight)}
		w = newWindow(r, c, async.drain)
		async.w = w
		sink = async
	} else {
		w = newWindow(r, c, nil)
		sink = &syncSink{r: r, c: c, w: w}
	}
	r.mu.Lock()
	r.committer, r.window = c, w
	r.mu.Unlock()

	err = r.stopped(lctx, r.follow(lctx, st, sink))

	// The final flush: acks in flight first, then the committer's Close,
	// bounded by CloseTimeout (ctx may be cancelled already: shutdown).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CloseTimeout)
	defer cancel()
	lost := errors.Is(lease.Err(), leader.ErrLost)
	if lost {
		// Another relay may lead already: a flush now would land behind
		// its back and fence it. Abandon what was not saved instead (the
		// next leader publishes it again, within the commit window).
		cancel()
	}
	if async != nil {
		async.wait(cctx)
	}
	closeErr := c.Close(cctx)
	if lost {
		closeErr = nil // the abandon above, by design: not a failure
	}
	cs := c.Stats()
	r.mu.Lock()
	r.saved += cs.Saves
	r.saveErrors += cs.SaveErrors
	r.unsavedEnd = 0
	if closeErr != nil || lost {
		r.unsavedEnd = w.unsaved() // abandoned: the next leader publishes it again
	}
	r.committer, r.window = nil, nil
	r.mu.Unlock()
	errs := []error{err}
	if async != nil {
		if failed := async.failed(); failed != nil && failed != err {
			errs = append(errs, failed)
		}
	}
	// A permanent error of the committer (ErrFenced) is Close's too.
	if closeErr != nil && (err == nil || !errors.Is(err, store.ErrFenced)) {
		errs = append(errs, closeErr)
	}
	return errors.Join(errs...)
}

// stopped returns nil for an error caused by the end of lctx (shutdown or
// a lost lease), and err otherwise. ErrFenced is always returned.
func (r *Relay) stopped(lctx context.Context, err error) error {
	if err == nil || errors.Is(err, store.ErrFenced) || lctx.Err() == nil {
		return err
	}
	return nil
}

// sessionEnded reports whether err says the database session is gone: an
// administrator's or a shutdown's termination (class 57), a connection
// failure (class 08), or a closed connection (the socket's, or one pgx
// closed after a failure: pgconn.ErrConnClosed, what a later statement of
// a transaction on it returns).
func sessionEnded(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57") || strings.HasPrefix(pgErr.Code, "08")
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed)
}
