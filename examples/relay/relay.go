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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
	"github.com/outboxkit/offsetstore/store"
)

// Defaults of Config.
const (
	DefaultMaxInFlight   = 1000
	DefaultBatchSize     = 1000
	DefaultPollInterval  = 100 * time.Millisecond
	DefaultDiscoverEvery = time.Second
	DefaultCloseTimeout  = 10 * time.Second

	// DefaultMaxUnsavedCommits × CommitEvery is the default MaxUnsaved.
	DefaultMaxUnsavedCommits = 10
	// DefaultMaxSaveFailure is the default MaxSaveFailure.
	DefaultMaxSaveFailure = time.Minute
)

// ErrInvalidConfig is matched by the error of New for a Config it refuses.
var ErrInvalidConfig = errors.New("relay: invalid config")

// Config configures a relay. Pool, Outbox and exactly one of Publish,
// PublishAsync and PublishTx are required.
//
// # The publish functions and their ctx
//
// The ctx given to Publish, PublishAsync and PublishTx is the lease's: it
// ends the moment the relay learns that its leadership is lost (or Run's
// ctx is cancelled). The relay checks it right before every call and
// calls no publish function once it has ended, whatever the function does
// with it: a publish function that ignores ctx is never called after the
// loss. What the relay cannot stop is a call already under way: a
// function that ignores ctx delivers the event it was given even when the
// lease is lost during the call, perhaps after the next leader began, so
// that event may be published twice at once. A publish function should
// therefore pass ctx to its client (or check it) and return promptly once
// it ends; an event whose delivery was cut short is published again by
// the next leader (at-least-once).
type Config struct {
	// Pool connects to the database of the journal. The leadership is held
	// on a connection of its own, opened with the pool's config.
	Pool *pgxpool.Pool
	// Outbox names the outbox: its offsets and its leadership.
	Outbox string

	// Publish publishes one event and returns once it is delivered. An
	// error stops the relay (Run returns a *PublishError). It is called
	// from one goroutine, one event at a time, never after ctx ended (see
	// above).
	Publish func(ctx context.Context, ev journal.Event) error
	// PublishAsync starts publishing one event and returns; ack must be
	// called exactly once, from any goroutine, when the delivery is
	// confirmed (nil) or has failed (an error, which stops the relay).
	// Acks may come in any order. At most MaxInFlight events wait for
	// their ack. It is never called after ctx ended (see above); acks
	// that come after the lease was lost are not saved.
	PublishAsync func(ctx context.Context, ev journal.Event, ack func(error))
	// PublishTx writes the effects of events (consecutive events of one
	// stream) through tx, an open transaction on Pool; the relay then
	// saves the stream's offset in the same transaction and commits it.
	// Exactly once for sinks in the journal's database. An error rolls
	// the transaction back and stops the relay. It is never called after
	// ctx ended (see above); a transaction under way when the lease is
	// lost rolls back, unless its COMMIT was sent already (the next
	// leader's first save then meets its row: fenced, it reopens).
	//
	// The transaction carries server-side bounds tied to the lease's
	// session timeout d (leader.WithSessionTimeout, default 10 s), set
	// for it alone (pgjournal.BeginBounded), so that a leader whose
	// network vanishes in the middle of it does not block the next one:
	// the server ends the session of a transaction idle for d between
	// two statements (idle_in_transaction_session_timeout; PublishTx must
	// not wait that long between statements), or silent at the TCP level
	// for about d; a lock wait longer than 2d (lock_timeout, SQLSTATE
	// 55P03, in PublishTx's statements too) rolls the transaction back
	// and the relay runs it again, counted in Stats.SaveErrors, until
	// MaxSaveFailure has passed without a commit (Run then returns a
	// *SaveFailureError). A SET LOCAL in PublishTx overrides them.
	PublishTx func(ctx context.Context, tx pgx.Tx, events []journal.Event) error

	// Follow, when set, selects the streams to relay among those listed
	// (the outbox::… streams are never listed). Defaults to every stream.
	Follow func(persistenceID string) bool

	// Journal is the journal read and written. It must list streams
	// (journal.StreamLister); reading many heads at once
	// (journal.HighestReader) is used when it can. Defaults to
	// pgjournal.New(Pool, JournalOptions...).
	Journal journal.Journal
	// JournalOptions configure the default Journal and, with PublishTx,
	// the journal of each transaction (pgjournal.WithTable). Defaults to
	// none.
	JournalOptions []pgjournal.Option
	// StoreOptions are given to store.Open. Defaults to none.
	StoreOptions []store.Option
	// Incremental makes the relay's store write deltas of the keys that
	// moved between full snapshots (store.WithIncremental): for an outbox
	// that follows many streams (from about 10 000) with a small change
	// per save. Defaults to false: a full snapshot per save, the format
	// the original Rust implementation reads.
	Incremental bool
	// LeaderOptions are given to leader.Acquire. Defaults to none.
	LeaderOptions []leader.Option

	// CommitEvery is the committer's store.WithCommitEvery. Defaults to
	// store.DefaultCommitEvery (1000).
	CommitEvery int
	// CommitInterval is the committer's store.WithCommitInterval. Defaults
	// to store.DefaultCommitInterval (1s).
	CommitInterval time.Duration
	// MaxInFlight bounds the events of PublishAsync waiting for their ack.
	// Defaults to DefaultMaxInFlight (1000).
	MaxInFlight int
	// BatchSize is the most events read from one stream per pass, and the
	// events of one transaction with PublishTx. Defaults to
	// DefaultBatchSize (1000).
	BatchSize int
	// PollInterval is the wait after a pass that found nothing new.
	// Defaults to DefaultPollInterval (100ms).
	PollInterval time.Duration
	// DiscoverEvery is how often the streams are listed again to find new
	// ones. Defaults to DefaultDiscoverEvery (1s).
	DiscoverEvery time.Duration
	// CloseTimeout bounds the final flush at shutdown (the wait for acks
	// in flight and the committer's Close) and the release of the lease.
	// Defaults to DefaultCloseTimeout (10s).
	CloseTimeout time.Duration

	// MaxUnsaved bounds, with Publish and PublishAsync, the events
	// published whose offsets are not yet known to be saved
	// (Stats.Unsaved): the events the next leader publishes again after
	// a crash. When it is reached, publishing pauses (Stats.Paused, a
	// warning in the log): with PublishAsync the acks in flight are
	// awaited, then the committer is flushed, again with growing delays
	// while the flush fails, and publishing resumes once it succeeds.
	// While saves keep up, the relay learns of them without pausing, a
	// few saves late; a MaxUnsaved close to CommitEvery makes pauses the
	// usual way to save. With PublishAsync, the events in flight
	// (MaxInFlight) come on top. Defaults to DefaultMaxUnsavedCommits ×
	// CommitEvery (10 000).
	MaxUnsaved int
	// MaxSaveFailure bounds how long the relay goes on without a
	// successful save of the offsets while published events wait to be
	// saved, whether the saves fail (disk full, permission denied, a
	// read-only server) or hang (a lock held by a writer whose network
	// vanished): past it, the relay stops (with the final flush, bounded
	// by CloseTimeout, and the release of the lease) and Run returns a
	// *SaveFailureError matching ErrSaveFailing. Each failed save is
	// counted in Stats.SaveErrors, the latest kept in Stats.LastSaveError,
	// and the first of a series logged as a warning. The time counts
	// within one leadership: a new one starts afresh. Defaults to
	// DefaultMaxSaveFailure (1m).
	MaxSaveFailure time.Duration
	// Logger receives what the relay handles without returning it: saves
	// failing and working again, pauses of publishing, lost leases. Run's
	// errors are returned, not logged. Defaults to none (nothing logged).
	Logger *slog.Logger
}

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

	log *slog.Logger

	leaderships, published, saves, reopens, fenced, idle atomic.Int64
	paused, txSaveErrors                                 atomic.Int64
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
	case cfg.PollInterval < 0 || cfg.DiscoverEvery < 0 || cfg.CloseTimeout < 0 || cfg.CommitInterval < 0 || cfg.MaxSaveFailure < 0:
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
	return &Relay{cfg: cfg, j: cfg.Journal, lister: lister, log: log}, nil
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
// failure (class 08), or a closed connection.
func sessionEnded(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57") || strings.HasPrefix(pgErr.Code, "08")
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
