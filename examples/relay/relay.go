package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
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
)

// ErrInvalidConfig is matched by the error of New for a Config it refuses.
var ErrInvalidConfig = errors.New("relay: invalid config")

// Config configures a relay. Pool, Outbox and exactly one of Publish,
// PublishAsync and PublishTx are required.
type Config struct {
	// Pool connects to the database of the journal. The leadership is held
	// on a connection of its own, opened with the pool's config.
	Pool *pgxpool.Pool
	// Outbox names the outbox: its offsets and its leadership.
	Outbox string

	// Publish publishes one event and returns once it is delivered. An
	// error stops the relay (Run returns a *PublishError).
	Publish func(ctx context.Context, ev journal.Event) error
	// PublishAsync starts publishing one event and returns; ack must be
	// called exactly once, from any goroutine, when the delivery is
	// confirmed (nil) or has failed (an error, which stops the relay).
	// Acks may come in any order. At most MaxInFlight events wait for
	// their ack.
	PublishAsync func(ctx context.Context, ev journal.Event, ack func(error))
	// PublishTx writes the effects of events (consecutive events of one
	// stream) through tx, an open transaction on Pool; the relay then
	// saves the stream's offset in the same transaction and commits it.
	// Exactly once for sinks in the journal's database. An error rolls
	// the transaction back and stops the relay.
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
	// OnCommitter observes each committer the relay starts (see
	// observe.go). Defaults to none.
	OnCommitter CommitterHook
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

// Stats counts what a relay did since New.
type Stats struct {
	// Leaderships is the number of leases taken.
	Leaderships int64
	// Published is the number of events delivered: Publish returned nil,
	// an ack came with nil, or a PublishTx transaction committed.
	Published int64
	// Saves is the number of saves of the offsets: the committers'
	// successful saves, or committed transactions with PublishTx.
	Saves int64
	// Reopens counts reopens of the store after an operator's change.
	Reopens int64
	// Fenced counts fencings by another relay: each reopens the store
	// while the lease is held (the writer was a former leader), or ends
	// the leadership when it is not, or after repeated fencings.
	Fenced int64
	// IdlePasses counts passes that found nothing new to publish: the
	// relay had caught up with every stream it knows.
	IdlePasses int64
	// Opened is the sequence number of the snapshot loaded by the latest
	// store.Open (0 for none).
	Opened uint64
	// Snapshot is the sequence number of the newest snapshot the relay's
	// store wrote or loaded.
	Snapshot uint64
}

// Relay is one relay process of an outbox. Run it with Run.
type Relay struct {
	cfg    Config
	j      journal.Journal
	lister journal.StreamLister

	leaderships, published, saves, reopens, fenced, idle atomic.Int64
	opened, snapshot                                     atomic.Uint64

	mu        sync.Mutex
	committer *store.Committer // the live one, for Stats
	saved     int64            // saves of the committers already closed
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
	case cfg.MaxInFlight < 0 || cfg.BatchSize < 0 || cfg.CommitEvery < 0:
		return nil, fmt.Errorf("%w: MaxInFlight, BatchSize and CommitEvery must not be negative", ErrInvalidConfig)
	case cfg.PollInterval < 0 || cfg.DiscoverEvery < 0 || cfg.CloseTimeout < 0 || cfg.CommitInterval < 0:
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
	if cfg.Journal == nil {
		cfg.Journal = pgjournal.New(cfg.Pool, cfg.JournalOptions...)
	}
	lister, ok := cfg.Journal.(journal.StreamLister)
	if !ok {
		return nil, fmt.Errorf("%w: the journal %T does not list streams (journal.StreamLister)", ErrInvalidConfig, cfg.Journal)
	}
	return &Relay{cfg: cfg, j: cfg.Journal, lister: lister}, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Stats returns what the relay did so far. It is safe to call while Run
// runs.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	saves := r.saved
	if r.committer != nil {
		saves += r.committer.Stats().Saves
	}
	r.mu.Unlock()
	return Stats{
		Leaderships: r.leaderships.Load(),
		Published:   r.published.Load(),
		Saves:       saves + r.saves.Load(),
		Reopens:     r.reopens.Load(),
		Fenced:      r.fenced.Load(),
		IdlePasses:  r.idle.Load(),
		Opened:      r.opened.Load(),
		Snapshot:    r.snapshot.Load(),
	}
}

// maxConnectFailures is how many times in a row Run tries to reach the
// database for the leadership before it gives up (about 50 s of waits).
const maxConnectFailures = 30

// Run relays until ctx is cancelled (a graceful shutdown: it returns nil,
// or the error of the final flush) or an error it cannot handle (see the
// package documentation). Run one Run per Relay at a time.
func (r *Relay) Run(ctx context.Context) error {
	connectFailures := 0
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

		err = r.lead(ctx, lease)

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
	st, err := store.Open(lctx, r.j, r.cfg.Outbox, r.cfg.StoreOptions...)
	if err != nil {
		return r.stopped(lctx, err)
	}
	r.opened.Store(st.SequenceNr())
	r.snapshot.Store(st.SequenceNr())
	defer func() { r.snapshot.Store(st.SequenceNr()) }()
	if r.cfg.PublishTx != nil {
		return r.stopped(lctx, r.follow(lctx, st, &txSink{r: r, st: st}))
	}

	c, err := store.NewCommitter(st, store.WithCommitEvery(r.cfg.CommitEvery), store.WithCommitInterval(r.cfg.CommitInterval))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.committer = c
	r.mu.Unlock()
	defer r.watch(c)()
	var sink sink = &syncSink{r: r, c: c}
	var async *asyncSink
	if r.cfg.PublishAsync != nil {
		async = &asyncSink{r: r, c: c, slots: make(chan struct{}, r.cfg.MaxInFlight)}
		sink = async
	}

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
	r.mu.Lock()
	r.saved += c.Stats().Saves
	r.committer = nil
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
