package journal

import (
	"context"
	"errors"
	"fmt"
)

// ErrBaseMissing is matched by the error of AppendSuccessor when the event
// before the one appended is not the stream's newest live event: the
// stream ends below it (rows lost under a writer that still counts them:
// a failover to a replica that missed the newest commits, a restore) or
// that event is deleted. Nothing was appended.
var ErrBaseMissing = errors.New("journal: the event before is not the stream's newest live event")

// BaseMissingError is the error behind ErrBaseMissing.
type BaseMissingError struct {
	PersistenceID string
	SequenceNr    uint64 // the event not appended
	Highest       uint64 // the stream's highest sequence number, deleted rows included
}

func (e *BaseMissingError) Error() string {
	return fmt.Sprintf("journal: persistence id %q: sequence nr %d not appended: the stream's highest is %d, and the event before %d is not its newest live one",
		e.PersistenceID, e.SequenceNr, e.Highest, e.SequenceNr)
}

// Is reports whether target is ErrBaseMissing.
func (e *BaseMissingError) Is(target error) bool { return target == ErrBaseMissing }

// SuccessorAppender is implemented by journals that can append an event on
// the condition that it directly follows the newest event of its stream.
// A writer whose rows build on the row before (the offset store's deltas)
// uses it, so that a row is never written on one the journal no longer
// has.
type SuccessorAppender interface {
	// AppendSuccessor appends ev, as AppendNext does, only if the stream's
	// highest sequence number is ev.SequenceNr−1 and that event is live,
	// in one atomic step. A stream at or above ev.SequenceNr fails as
	// AppendNext does (ErrSequenceConflict, Superseded); a stream below,
	// or whose event before is deleted, fails with ErrBaseMissing. Under
	// REPEATABLE READ or SERIALIZABLE it reports ErrUnverified as
	// AppendNext does.
	AppendSuccessor(ctx context.Context, ev Event) error
}
