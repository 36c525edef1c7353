// Package store keeps the progress of an outbox relay: a map from source
// persistence id to the last published sequence number, saved as one
// framed snapshot row per change in a journal.Journal, under the
// persistence id outbox::<name>::offsets.
//
// # Guarantees
//
//   - Durable: Save, Rewind and Forget return nil only once the snapshot is
//     committed. Every error is returned; none is logged and dropped.
//   - Never silently from zero: Open fails when the journal fails or the
//     newest snapshot cannot be decoded (ErrCorruptSnapshot), instead of
//     starting with empty offsets and re-publishing everything.
//   - Race-free Open: Open reads the stream's head (its newest live
//     snapshot and highest sequence number) in one consistent step
//     (journal.HeadReader; journal.ReadHead re-reads until two reads agree
//     on journals without it). A store opened while another writer commits
//     the outbox's first or next snapshot either loads that snapshot or is
//     fenced at its first write; it never starts from empty offsets at the
//     other writer's sequence number.
//   - Wiping an outbox is explicit: DeleteTo up to the stream's highest row
//     (a journal-level operation the store never performs) leaves no live
//     snapshot, and Open then starts from empty offsets above the highest
//     number without an error. That is the one way to reset an outbox to
//     nothing; retention always keeps at least one live snapshot.
//   - Monotonic: Save ignores a value lower than the stored one. Only the
//     explicit operator calls Rewind and Forget move a key back or drop it.
//   - One writer: each snapshot is written at the next sequence number, and
//     the journal's (persistence id, sequence nr) key refuses a second row
//     there. A store that finds another writer's snapshot in its place is
//     fenced: that call and every later Save, Rewind and Forget fail with
//     ErrFenced until the outbox is opened again.
//   - Who fenced whom: a *FencedError names the writer of the newer
//     snapshot and says whether it is an operator's tool (writer ids made
//     by OperatorWriterID, as the CLI's are: reopen to load the change) or
//     another relay (stop publishing; run one relay per outbox with package
//     leader). CheckOwnership asks without writing.
//   - A stale writer never lands a row: on a journal with
//     journal.NextAppender (pgjournal), a save is refused when any row at or
//     above its sequence number exists, checked under a per-stream lock, so
//     a writer stalled mid-insert cannot slip under rows another writer
//     committed and pruned meanwhile. On a journal without it (a wrapper
//     that does not forward AppendNext, say), the store reads the stream's
//     head after each plain Append, one more round trip, and a write that
//     landed under a newer head fences the store instead of returning nil:
//     wrappers should forward NextAppender and HeadReader. Under SERIALIZABLE the loser of a race
//     is told by a rollback (journal.ErrRolledBack), which the store
//     resolves like a conflict: fenced, adopted, or (no row there) an error
//     that says nothing was written.
//   - Lost acknowledgements are adopted, not fenced: when a write's reply is
//     lost after the commit, the store finds its own snapshot (its writer id
//     and the exact payload) and goes on from it; on a journal that can
//     confirm replication (journal.ReplicatedReader: pgjournal), only once
//     the row is confirmed on the synchronous standbys (see Failover).
//   - Memory never ahead of disk: Load returns what was last written or
//     loaded, never a change whose write failed or is still in doubt.
//   - Committed never past an unfinished event: with Track, a Committer
//     saves a key only up to the highest marked sequence number below the
//     lowest one still pending.
//   - Exactly-once for sinks in the same database: SaveTx commits the
//     offsets in the caller's transaction; memory follows the transaction.
//   - Bounded: the newest WithRetention snapshots are kept; older ones are
//     pruned with DeleteTo once every WithPruneInterval saves, so a typical
//     save is one journal call and an outbox holds at most retention +
//     interval rows.
//
// # Use
//
// Open the store when the relay starts, read where to resume with Load,
// and Save after publishing. Saves from several goroutines are serialised.
// Bad input (an empty key, invalid UTF-8, a NUL byte, a key longer than
// MaxKeyLen) fails with ErrInvalidKey and writes nothing.
//
// # Committer
//
// A relay does not Save per event: it marks progress on a Committer, which
// saves in the background. Mark(key, seq) costs no I/O and no allocation
// for a known key and never waits for a save. A save starts after
// WithCommitEvery marks or WithCommitInterval since the last save,
// whichever comes first; one at a time; only keys that moved are saved.
// Flush waits until what is marked is durable; Close flushes and stops.
//
// A relay that publishes asynchronously calls Track(key, seq) before it
// publishes and Mark(key, seq) on the ack: the saved offset of a key never
// passes an event still in flight, whatever order acks arrive in.
//
// A failed save is retried with growing delays and reported by Err until
// one succeeds. ErrFenced, or another error no retry can cure, stops the
// committer: every later call returns it, and the relay should reopen.
//
// # Offsets in the caller's transaction
//
// When the sink is a table in the journal's database, SaveTx writes the
// snapshot through the caller's transaction and calls its commit, so the
// sink's rows and the offsets commit together (see SaveTx and its
// example). ErrRetryTx asks the caller to run the transaction again;
// ErrInDoubt says the commit's outcome is unknown, and running it again is
// safe; ErrFenced means another relay owns the outbox.
//
// # Failover
//
// On a PostgreSQL primary with a synchronous standby
// (synchronous_standby_names, synchronous_commit on or remote_apply), every
// save that returned nil is on the standby, and so on the server a
// failover promotes. A commit whose wait for the standby is cancelled (its
// session terminated, its connection cut, pg_cancel_backend, a client's
// cancel request) is kept by PostgreSQL and visible on the primary, but may
// be missing from the standby: reading the row back does not prove it
// durable there. So the store acknowledges a write whose outcome was
// unknown (an adoption, ErrRetryTx included) only after the journal
// confirmed it on the standbys (journal.ReplicatedReader: the read and a
// synchronous commit of its own on one connection); when that fails or
// times out the write stays in doubt (ErrInDoubt) and the next write
// settles it. A write the server reports committed with a warning that it
// stopped waiting (journal.ErrNotReplicated: pgjournal sees it on a pool
// prepared by pgjournal.ConfigurePool), and a SaveTx whose transaction's
// journal reports its commit so (journal.ReplicationReporter), are
// confirmed the same way before they return nil. Decisions that
// acknowledge nothing (fencing) need no confirmation. Open, too, may load
// a row that is on the primary alone (another process's write whose wait
// was cancelled): the first write after Open confirms what Open loaded
// (one read and one synchronous commit, once per Open), and when a
// failover has lost it since, that write fails with ErrOpenedSnapshotLost,
// writing nothing, rather than build on it (a delta whose base is gone, a
// SaveTx whose offsets claim sink rows the server does not have). A store
// keeps working against the promoted server through a multi-host URL; a
// store opened afresh after the failover (as the reference relay does with
// each leadership) loads what the promoted server has.
//
// # Leadership
//
// Fencing keeps the offsets safe when two relays run, but both would
// publish. Run one relay per outbox: package leader elects it with a
// PostgreSQL session advisory lock, and examples/relay is a reference
// relay that puts leadership, discovery, the committer and shutdown
// together.
//
// The store sees only the journal.Journal interface; use
// journal/pgjournal for PostgreSQL.
package store
