package relay

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
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
	DefaultSweepEvery    = 10 * time.Second
	DefaultCloseTimeout  = 10 * time.Second

	// DefaultMaxUnsavedCommits × CommitEvery is the default MaxUnsaved:
	// room for the saves of a catch-up, where a full snapshot of 100 000
	// keys takes longer than publishing 10 000 events, without pausing.
	DefaultMaxUnsavedCommits = 30
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
	// and the relay runs it again, counted in Stats.SaveErrors, as it does
	// a transaction the server ended for its idleness (SQLSTATE 25P03:
	// the offsets' save waited longer than d, for a synchronous standby
	// that was not back yet after a failover, say), until
	// MaxSaveFailure has passed without a commit (Run then returns a
	// *SaveFailureError). A SET LOCAL in PublishTx overrides them.
	PublishTx func(ctx context.Context, tx pgx.Tx, events []journal.Event) error

	// Follow, when set, selects the streams to relay among those listed
	// (the outbox::… streams are never listed). Defaults to every stream.
	Follow func(persistenceID string) bool

	// Journal is the journal read and written. It must list streams
	// (journal.StreamLister). With a feed (journal.FeedReader) and reads
	// of many streams (journal.StreamsReader), as pgjournal has, the
	// relay learns from the feed what moved and reads only that; a fresh
	// outbox catches up with journal.Scanner where the journal has it.
	// Without them it reads every stream's head each pass, many at once
	// where the journal can (journal.HighestReader). Defaults to
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
	// PollInterval is the longest wait after a pass that found nothing
	// new: the longest an event committed while the relay is idle waits
	// before a pass reads it (half of it on average). A pass that
	// publishes is followed by the next at once. On the feed, the wait
	// after a busy pass is a sixteenth of it, doubling with each pass that
	// finds nothing, so that events arriving steadily are read within
	// milliseconds while an idle relay looks every PollInterval; an idle
	// pass there is one statement of two index probes. Defaults to
	// DefaultPollInterval (100ms).
	PollInterval time.Duration
	// DiscoverEvery is how often the streams are listed again to find new
	// ones, on a journal without a feed (the feed reports new streams as
	// it reports the others). Defaults to DefaultDiscoverEvery (1s).
	DiscoverEvery time.Duration
	// SweepEvery is how often, on a feed that may miss a commit
	// (journal.FeedReader's FeedExact false: pgjournal WithCitus, for a
	// transaction written to several workers), the relay lists the
	// streams and reads every stream's head to find what the feed missed:
	// the longest such an event waits. A sweep costs a read per stream
	// followed. Defaults to DefaultSweepEvery (10s).
	SweepEvery time.Duration
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
	// CommitEvery (30 000).
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
