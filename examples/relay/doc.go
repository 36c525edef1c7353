// Package relay is the reference outbox relay: a small, tested program
// shape that follows every stream of a journal on PostgreSQL and publishes
// its events, keeping its progress with package store. Copy it into your
// service and change what you need; it is written to be read.
//
// # What it does
//
// Run loops over leaderships, one at a time:
//
//  1. Leadership first: leader.Acquire on the pool. A standby relay of the
//     same outbox waits here until the leader's session ends.
//  2. store.Open under the lease's context, so that a lost lease stops
//     everything that follows.
//  3. Catch-up (feed.go, catchup.go): the feed's cursor is taken first
//     (journal.FeedReader.FeedStart: what commits from then on, the feed
//     reports). A fresh outbox (no offsets) then reads the whole journal
//     in key order with journal.Scanner, page by page, at the speed of one
//     streaming SELECT; an outbox with offsets lists its streams
//     (journal.AllPersistenceIDs, the offsets' own outbox::… streams
//     excluded) and reads each from its offset + 1.
//  4. Each pass reads the feed from the previous pass's cursor: the
//     streams with rows committed since (new streams included), at a cost
//     that follows those rows, not the streams followed; a transaction
//     that commits after newer ones is reported when it commits. The
//     streams that moved are read from their positions, up to 1 000 in
//     one round trip (journal.StreamsReader), at most Config.BatchSize
//     events per stream and pass. A pass that published is followed by
//     the next at once; after one that found nothing the relay waits, a
//     sixteenth of Config.PollInterval at first, doubling up to it.
//     On a feed that may miss a commit (pgjournal WithCitus: a
//     transaction written to several workers) the relay also lists the
//     streams and reads every head each Config.SweepEvery. On a journal
//     without a feed (heads.go) each pass reads the heads of every stream
//     followed (journal.HighestReader) and replays each that moved, and
//     the streams are listed again each Config.DiscoverEvery.
//  5. Publish and record progress, in one of three ways:
//     - Config.Publish (synchronous): publish, then Committer.Mark;
//     - Config.PublishAsync (acknowledged later, in any order):
//     Committer.Track before publishing, Committer.Mark on the ack, so
//     that no save passes an event still in flight;
//     - Config.PublishTx (a sink table in the same database): each
//     stream's batch and its offset commit in one transaction with
//     store.Store.SaveTx: exactly once, no committer.
//
// # Failures
//
//   - The lease is lost (the session was terminated, the connection cut,
//     the server restarted): publishing stops at once (its context is the
//     lease's, checked before every call of a publish function, so that
//     no call begins after the loss even when the function ignores its
//     context; see Config), the committer is stopped without a final
//     flush (another relay may lead already: a late save would fence it;
//     the next leader publishes the unsaved window again), and the relay
//     goes back to Acquire, as a standby. A save that was already in
//     flight may still land after the next leader opened the store: that
//     leader, fenced while it holds the lease, reopens the store and goes
//     on.
//   - store.ErrFenced: a *store.FencedError written by an operator
//     (FencedError.ByOperator: a rewind, a forget, an import) reopens the
//     store, which loads the change, and the relay goes on under the same
//     lease. Written by another relay: publishing stops, the lease is
//     released and the relay waits for the leadership again.
//   - A PublishTx transaction whose commit is in doubt (store.ErrInDoubt:
//     its reply was lost with the connection) is run again once; SaveTx
//     then finds the first one committed (store.ErrRetryTx) and the relay
//     goes on from the offsets, or the second one commits the batch. When
//     the run again is in doubt too (the first commit found, but not yet
//     confirmed on the synchronous standbys, which may be down), it runs
//     again until Config.MaxSaveFailure, as after a lock timeout or a
//     transaction the server ended for sitting idle (its save waited
//     longer than the session timeout for a standby not back yet).
//   - The database goes away under the leadership (a connection that
//     fails or cannot be opened, a session the server ends, a server that
//     refuses writes with SQLSTATE 25006, as a demoted primary does): the
//     lease is released (or already gone), and the relay waits a little
//     and takes the leadership again, on the server its pool reaches then.
//     With a multi-host URL and target_session_attrs=read-write that is
//     the promoted standby after a failover; prepare the pool with
//     pgjournal.ConfigurePool so that connections left on a primary made
//     read-only are dropped. After 30 such leaderships in a row that
//     saved nothing, Run returns the error.
//   - Saves of the offsets that fail (disk full, permission denied, a
//     read-only server) or hang: the committer retries them; publishing
//     pauses once Config.MaxUnsaved events are published and not saved,
//     and resumes once a save succeeds; after Config.MaxSaveFailure
//     without a successful save, Run stops with a *SaveFailureError (see
//     Bounds). Each failure is counted in Stats and the first of a series
//     logged (Config.Logger).
//   - A publish that fails (Publish's error, or an ack with an error) and
//     any other error stop Run, after the committer's final flush of what
//     was done and the release of the lease: Run returns the error, and
//     the caller decides whether to run it again.
//
// # Bounds
//
// With the lease's session timeout d (leader.WithSessionTimeout, default
// 10 s) and the defaults of Config:
//
//   - Lease lost: no publish function is called after the relay learns of
//     it (at once after a termination, within 2d/5 after a silent network
//     loss), even one that ignores its context; a call under way runs to
//     its end (see Config).
//   - Unsaved window (Publish, PublishAsync): at most Config.MaxUnsaved
//     events (default 30 × CommitEvery = 30 000) published and not known
//     saved, plus the acks in flight (MaxInFlight); that is what the next
//     leader publishes again after a crash. Stats.Unsaved shows it.
//   - Saves failing or hanging: Run returns a *SaveFailureError (matching
//     ErrSaveFailing) once no save has succeeded for Config.MaxSaveFailure
//     (default 1 min) while events wait, plus the final flush
//     (CloseTimeout).
//   - A leader whose network vanishes silently in the middle of a
//     PublishTx transaction (its COMMIT lost on the way, say): its
//     transaction holds the offsets stream's lock that the next leader's
//     first SaveTx waits for. Every transaction of the relay is begun with
//     server-side bounds for it alone (pgjournal.BeginBounded): the server
//     ends a transaction idle for d (idle_in_transaction_session_timeout)
//     and, on a direct connection, one whose client stops answering at
//     the TCP level in the middle of a statement, where no PostgreSQL
//     timeout applies, within about d, at least 4 s (tcp_user_timeout,
//     keepalives in whole seconds). The standby takes the leadership
//     about d after the loss, and its first commit follows at once:
//     within 2d of the loss (measured: 1.0–1.1 s with d = 1 s).
//     A lock wait of the relay's transaction longer than 2d (a lock no
//     bound frees: through a proxy that answers for the vanished client)
//     rolls it back and runs it again, up to MaxSaveFailure. Such a bound
//     also ends a transaction of a live relay that stays idle for d: keep
//     PublishTx from waiting between statements.
//   - The committer's saves (Publish, PublishAsync) run in implicit
//     transactions of one round trip (the stream's lock and the insert
//     end together at its Sync): a writer that vanished after sending a
//     whole save holds no lock. One that vanished in the middle of
//     sending it (a large snapshot spans several packets) leaves a session
//     that holds the lock while the server waits for the rest, with no
//     PostgreSQL timeout: only the TCP settings of that session end it
//     (tcp_keepalives_*, tcp_user_timeout; the server's defaults are hours:
//     set them in the pool's connection config to bound it). A pool whose
//     default isolation is REPEATABLE READ or SERIALIZABLE saves in an
//     explicit READ COMMITTED transaction, whose lost COMMIT leaves the
//     session idle in transaction: idle_in_transaction_session_timeout of
//     the pool bounds it. Meanwhile the next leader's saves wait:
//     publishing pauses at MaxUnsaved and Run returns ErrSaveFailing after
//     MaxSaveFailure.
//
// # Shutdown
//
// Cancelling Run's context is a graceful shutdown: publishing stops, the
// acknowledgements in flight are awaited, the committer's Close saves what
// was marked (the final flush, bounded by Config.CloseTimeout), and the
// lease is released so that a standby takes over at once. Run then returns
// nil, or the error of the final flush.
//
// # Delivery
//
// With Publish or PublishAsync, delivery is at-least-once: after a crash
// or a lost lease, the next leader re-publishes what was done after the
// last save: usually the committer's window (Config.CommitEvery events or
// Config.CommitInterval, whichever comes first, plus a save in flight),
// never more than Config.MaxUnsaved events plus the acks in flight. With
// PublishTx every event's sink rows commit exactly once.
package relay
