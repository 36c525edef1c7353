package journal

import (
	"errors"
	"fmt"
)

// ErrSequenceConflict is matched (with errors.Is) by every error reporting
// that an appended (PersistenceID, SequenceNr) already exists. It is the
// optimistic-concurrency check that writers rely on.
var ErrSequenceConflict = errors.New("journal: sequence number conflict")

// ErrInvalidArgument is matched by every error reporting input that was
// rejected before any I/O: an empty persistence id, a sequence number of 0
// or above math.MaxInt64, text with NUL bytes or invalid UTF-8.
var ErrInvalidArgument = errors.New("journal: invalid argument")

// ConflictError reports a duplicate (PersistenceID, SequenceNr) on Append.
// It matches ErrSequenceConflict.
type ConflictError struct {
	PersistenceID string
	SequenceNr    uint64
	// Superseded is true when NextAppender.AppendNext refused the event
	// because an event at or above its sequence number exists.
	Superseded bool
	// Err is the backend's own error, if any (for pgjournal, the
	// *pgconn.PgError of the unique violation).
	Err error
}

func (e *ConflictError) Error() string {
	if e.SequenceNr == 0 {
		return fmt.Sprintf("journal: sequence number conflict on persistence id %q", e.PersistenceID)
	}
	if e.Superseded {
		return fmt.Sprintf("journal: sequence number conflict: persistence id %q already has events at or above sequence nr %d", e.PersistenceID, e.SequenceNr)
	}
	return fmt.Sprintf("journal: sequence number conflict: persistence id %q, sequence nr %d already exists", e.PersistenceID, e.SequenceNr)
}

// Is reports whether target is ErrSequenceConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrSequenceConflict }

// Unwrap returns the backend's error.
func (e *ConflictError) Unwrap() error { return e.Err }

// InvalidArgumentError reports input rejected before any I/O. It matches
// ErrInvalidArgument.
type InvalidArgumentError struct {
	// Field names what was wrong, e.g. "persistence id" or "sequence nr".
	Field string
	// Reason says why, e.g. "is empty".
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("journal: invalid %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidArgument.
func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

// ErrRolledBack is matched by the error of a write that the backend rolled
// back whole, so that nothing of it was written: for PostgreSQL, a
// serialization failure (SQLSTATE 40001, as the loser of a race under
// SERIALIZABLE gets instead of a unique violation) or a deadlock (40P01).
// The write may be retried; a writer that fences through sequence numbers
// reads the row at the sequence number it tried, as after a conflict, to
// learn whether a peer's write caused it.
var ErrRolledBack = errors.New("journal: write rolled back")

// RolledBackError is the error behind ErrRolledBack.
type RolledBackError struct {
	// PersistenceID and SequenceNr name the event of a single-event write
	// (zero otherwise).
	PersistenceID string
	SequenceNr    uint64
	// Err is the backend's own error.
	Err error
}

func (e *RolledBackError) Error() string {
	if e.PersistenceID == "" {
		return fmt.Sprintf("journal: write rolled back, nothing written: %v", e.Err)
	}
	return fmt.Sprintf("journal: write of persistence id %q, sequence nr %d rolled back, nothing written: %v", e.PersistenceID, e.SequenceNr, e.Err)
}

// Is reports whether target is ErrRolledBack.
func (e *RolledBackError) Is(target error) bool { return target == ErrRolledBack }

// Unwrap returns the backend's error.
func (e *RolledBackError) Unwrap() error { return e.Err }

// ErrUnverified is matched by the error of an AppendNext that did append
// its event but checked the stream only against a transaction's snapshot
// (REPEATABLE READ or SERIALIZABLE), which may be older than events
// another writer committed, and pruned, before the stream's lock was
// taken. Inside the caller's transaction the lock is held until the
// transaction ends, so the caller reads the stream's highest sequence
// number through another connection before committing: at or above the
// event's, the transaction must roll back. Outside one (an implicit
// transaction, which pgjournal with WithCitus reports too) the event has
// committed: a highest sequence number above it is another writer's, and
// the event lies under its events, never to be read as the newest.
var ErrUnverified = errors.New("journal: appended, but checked only against the transaction's snapshot")
