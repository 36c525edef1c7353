// Package journal defines the event journal that the offset store writes
// to: the Event row, the Journal interface, its sentinel errors and the
// validation every backend applies before any I/O.
//
// # Semantics
//
// A journal holds streams of events, one per persistence id, numbered by
// sequence number from 1. The pair (PersistenceID, SequenceNr) is unique:
// appending an existing pair fails with an error matching
// ErrSequenceConflict, which is the optimistic-concurrency check writers
// build on. Append is atomic for the whole batch. Replay streams events in
// ascending order. DeleteTo removes a prefix of a stream but never lowers
// HighestSequenceNr: the highest row is kept, marked Deleted.
//
// # Optional interfaces
//
// A backend may implement more than Journal; callers find out with a type
// assertion and use the fallbacks given here otherwise:
//
//   - NextAppender: append only as the newest event of its stream, the
//     fencing step of the offset store.
//   - HeadReader: the newest live event and the highest number in one
//     consistent read (ReadHead falls back to re-reading).
//   - StreamLister: the persistence ids in order, paged
//     (AllPersistenceIDs iterates every page).
//   - HighestReader: the highest sequence numbers of many streams in one
//     round trip (ReadHighest falls back to HighestSequenceNr).
//   - BeforeReader: the highest sequence numbers of many streams among
//     the rows written before a point in time, for point-in-time rewinds.
//   - LagReader: many positions compared with their streams (highest
//     number, time of the first event above the position) in few round
//     trips, only the streams not at their position coming back
//     (ReadStreamLags falls back to HighestSequenceNr and Replay).
//   - FeedReader: which streams moved since a cursor, at a cost that
//     follows what was committed since, not the number of streams; a
//     transaction that commits after newer ones is reported when it
//     commits, never skipped.
//   - StreamsReader: the events of many streams, each above its own
//     position, in one round trip, bounded per stream and in total.
//   - Scanner: the events of every stream in key order, page by page, at
//     the speed of one streaming read (catching up on a whole journal).
//   - SuccessorAppender: append a delta only on top of the row it builds
//     on (the base still present), the incremental store's step.
//   - ChainReader: a stream's newest base event and the events above it
//     in one consistent read (ReadChain falls back to re-reading).
//   - ReplicatedReader: a read on one server, confirmed to be on its
//     synchronous standbys before the reader relies on it (see
//     ErrNotReplicated); ReplicationReporter: whether a caller's
//     transaction's commit is known to be on them.
//
// # Backends
//
// NewMemory returns an in-memory reference journal for tests. Package
// journal/pgjournal implements Journal on PostgreSQL with pgx/v5. Package
// journal/journaltest holds the conformance suite every backend passes.
package journal
