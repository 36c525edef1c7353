package journal

import (
	"context"
	"iter"
	"time"
)

// Event is one row of the journal: one event of one persistence id.
type Event struct {
	// PersistenceID names the stream the event belongs to. Must be non-empty
	// valid UTF-8 without NUL bytes.
	PersistenceID string
	// SequenceNr is the event's position in its stream, from 1 to
	// math.MaxInt64 (the column is a bigint).
	SequenceNr uint64
	// Payload is the serialized event. Never nil when read back.
	Payload []byte
	// Manifest names the payload's format. Defaults to "".
	Manifest string
	// WriterUUID identifies the writer that appended the event. Defaults to "".
	WriterUUID string
	// Deleted is true for the highest event of a stream once DeleteTo has
	// reached it: the row is kept so that HighestSequenceNr never decreases.
	// Ignored on Append.
	Deleted bool
	// Tags are free-form labels. Nil and empty are the same.
	Tags []string
	// WrittenAt is set by the journal on write; ignored on Append.
	WrittenAt time.Time
}

// Journal is an append-only log of events, keyed by (PersistenceID,
// SequenceNr). Implementations must be safe for concurrent use.
type Journal interface {
	// Append writes all events atomically: every row or none. An event
	// whose (PersistenceID, SequenceNr) already exists, or appears twice in
	// the batch, fails the whole call with an error that matches
	// ErrSequenceConflict. Invalid events fail with ErrInvalidArgument before
	// any I/O. Appending no events is a no-op. Append does not keep the
	// events' Payload or Tags after it returns: the caller may reuse them.
	Append(ctx context.Context, events ...Event) error

	// Replay yields the non-deleted events of persistenceID with
	// fromSeq <= SequenceNr <= toSeq in ascending order, at most max of
	// them (max == 0 yields nothing, math.MaxUint64 means no limit). toSeq
	// above math.MaxInt64 is clamped to it (math.MaxUint64 reads to the end);
	// fromSeq above it yields nothing. Rows are streamed; breaking out
	// of the loop releases the underlying resources. An error is yielded
	// once, as the last element.
	Replay(ctx context.Context, persistenceID string, fromSeq, toSeq, max uint64) iter.Seq2[Event, error]

	// HighestSequenceNr returns the highest sequence number ever written for
	// persistenceID, deleted rows included, or 0 if there is none.
	HighestSequenceNr(ctx context.Context, persistenceID string) (uint64, error)

	// DeleteTo removes the events of persistenceID with SequenceNr <= toSeq.
	// It never lowers HighestSequenceNr: when toSeq reaches the highest event,
	// that row is kept and marked Deleted. toSeq above math.MaxInt64 is
	// clamped to it.
	DeleteTo(ctx context.Context, persistenceID string, toSeq uint64) error

	// Last returns the newest non-deleted event of persistenceID, in one
	// round trip. ok is false when there is none.
	Last(ctx context.Context, persistenceID string) (ev Event, ok bool, err error)
}

// NextAppender is implemented by journals that can append an event on the
// condition that it is the newest of its stream. Writers that fence each
// other through sequence numbers (the offset store) use it when available:
// with plain Append, a stale writer whose next sequence number was already
// written and then deleted by DeleteTo would not see a conflict.
type NextAppender interface {
	// AppendNext appends ev only if HighestSequenceNr(ev.PersistenceID) is
	// below ev.SequenceNr, in one atomic step. Otherwise it appends nothing
	// and fails with an error matching ErrSequenceConflict, naming ev's
	// persistence id and sequence number. Like Append, it does not keep
	// ev's Payload or Tags after it returns. A journal that can check the
	// condition only against a transaction's snapshot, which may be older
	// than the stream's newest events, appends and returns an error
	// matching ErrUnverified (see there).
	AppendNext(ctx context.Context, ev Event) error
}
