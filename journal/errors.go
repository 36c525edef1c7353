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
