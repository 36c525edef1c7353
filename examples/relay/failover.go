package relay

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/store"
)

// serverLost reports whether err, the error that ended a leadership, says
// the database went away under the relay: a connection that failed or
// could not be opened, a session ended by the server (a killed primary, a
// failover), a server that refuses writes as a demoted primary does
// (SQLSTATE 25006), or a store whose opened snapshot a failover lost
// (store.ErrOpenedSnapshotLost). Run then stands by and takes the
// leadership again, on the server the pool reaches by then (the new
// primary, through a multi-host URL with target_session_attrs=read-write),
// and opens the store again there, instead of returning. Saves that
// failed for Config.MaxSaveFailure (ErrSaveFailing) are not a lost server,
// whatever their last error: that bound is the caller's, and leading
// again would start it anew.
func serverLost(err error) bool {
	if err == nil || errors.Is(err, ErrSaveFailing) {
		return false
	}
	var ce *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, store.ErrOpenedSnapshotLost):
		return true
	case errors.As(err, &ce):
		return true
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ReadOnlySQLTransaction:
		return true
	}
	return sessionEnded(err)
}

// lostSessions bounds the leaderships in a row that end with the server
// lost and save nothing, after which Run returns the error: the database
// is not coming back.
type lostSessions struct {
	n int
}

// again records a leadership that ended with the server lost, having
// saved (progress) or not, and waits before the next attempt (or until
// ctx ends: the next Acquire then returns at once). It returns false when
// the relay should give up: too many in a row without a save.
func (l *lostSessions) again(ctx context.Context, progress bool) bool {
	if progress {
		l.n = 0
	}
	if l.n >= maxConnectFailures {
		return false
	}
	l.n++
	select {
	case <-time.After(time.Duration(l.n) * 100 * time.Millisecond):
		return true
	case <-ctx.Done():
		return true
	}
}
