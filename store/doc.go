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
//     committed and pruned meanwhile. Under SERIALIZABLE the loser of a race
//     is told by a rollback (journal.ErrRolledBack), which the store
//     resolves like a conflict: fenced, adopted, or (no row there) an error
//     that says nothing was written.
//   - Lost acknowledgements are adopted, not fenced: when a write's reply is
//     lost after the commit, the store finds its own snapshot (its writer id
//     and the exact payload) and goes on from it.
//   - Memory never ahead of disk: Load returns what was last written or
//     loaded, never a change whose write failed or is still in doubt.
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
// The store sees only the journal.Journal interface; use
// journal/pgjournal for PostgreSQL.
package store
