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
//  3. Discovery: the source streams are listed with
//     journal.AllPersistenceIDs (the offsets' own outbox::… streams
//     excluded), again every Config.DiscoverEvery, so streams created
//     after the start are followed.
//  4. Each pass reads the heads of the known streams in one round trip
//     (journal.HighestReader) and replays each stream that moved from its
//     offset + 1, at most Config.BatchSize events per stream and pass.
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
//     goes back to Acquire, as a standby. A save that was already in flight may still
//     land after the next leader opened the store: that leader, fenced
//     while it holds the lease, reopens the store and goes on.
//   - store.ErrFenced: a *store.FencedError written by an operator
//     (FencedError.ByOperator: a rewind, a forget, an import) reopens the
//     store, which loads the change, and the relay goes on under the same
//     lease. Written by another relay: publishing stops, the lease is
//     released and the relay waits for the leadership again.
//   - A PublishTx transaction whose commit is in doubt (store.ErrInDoubt:
//     its reply was lost with the connection) is run again once; SaveTx
//     then finds the first one committed (store.ErrRetryTx) and the relay
//     goes on from the offsets, or the second one commits the batch.
//   - A publish that fails (Publish's error, or an ack with an error) and
//     any other error stop Run, after the committer's final flush of what
//     was done and the release of the lease: Run returns the error, and
//     the caller decides whether to run it again.
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
// last save, at most the committer's window (Config.CommitEvery events or
// Config.CommitInterval, whichever comes first, plus a save in flight).
// With PublishTx every event's sink rows commit exactly once.
package relay
