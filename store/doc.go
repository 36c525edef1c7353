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
//   - Monotonic: Save ignores a value lower than the stored one. Only the
//     explicit operator calls Rewind and Forget move a key back or drop it.
//   - One writer: each snapshot is written at the next sequence number, and
//     the journal's (persistence id, sequence nr) key refuses a second row
//     there. A store that finds another writer's snapshot in its place is
//     fenced: that call and every later Save, Rewind and Forget fail with
//     ErrFenced until the outbox is opened again.
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
