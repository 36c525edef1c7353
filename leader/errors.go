package leader

import (
	"errors"
	"fmt"
)

// ErrInvalidArgument is matched by the error of Acquire and TryAcquire for
// an invalid outbox name, a nil pool or an invalid option, before any I/O.
var ErrInvalidArgument = errors.New("leader: invalid argument")

// ErrLost is matched by Lease.Err (and the cause of Lease.Context) once
// the lease's session has ended without Release: terminated, cut, or the
// server restarted. The relay must stop publishing; it may call Acquire
// again to stand by.
var ErrLost = errors.New("leader: leadership lost")

// ErrReleased is Lease.Err (and the cause of Lease.Context) after Release.
var ErrReleased = errors.New("leader: lease released")

// InvalidArgumentError reports what was wrong. It matches
// ErrInvalidArgument.
type InvalidArgumentError struct {
	Field  string
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("leader: invalid %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidArgument.
func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

// LostError says why a lease was lost. It matches ErrLost.
type LostError struct {
	// Outbox is the outbox whose leadership was lost.
	Outbox string
	// Err is what ended the session: the server's error (for example
	// SQLSTATE 57P01 after pg_terminate_backend), a closed connection, or a
	// keepalive ping that timed out.
	Err error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("leader: leadership of outbox %q lost: %v", e.Outbox, e.Err)
}

// Is reports whether target is ErrLost.
func (e *LostError) Is(target error) bool { return target == ErrLost }

// Unwrap returns what ended the session.
func (e *LostError) Unwrap() error { return e.Err }
