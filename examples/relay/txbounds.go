package relay

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// txBounds are the server-side bounds of every transaction of the relay
// with PublishTx, tied to the lease's session timeout d and set for the
// transaction alone (pgjournal.BeginBounded), so that a leader whose
// network vanishes in the middle of a transaction (as its COMMIT is sent,
// say) does not leave the offsets stream's lock held for hours, blocking
// the next leader's first commit:
//
//   - idle in the transaction for d (its COMMIT lost on the way, or the
//     client gone between two statements): the server ends the session,
//     which rolls the transaction back and frees its locks. The next
//     leader takes over about d after the loss too (the lease's session
//     ends after d of silence), so its first commit waits little or not
//     at all.
//   - silent at the TCP level for about d while the server waits for the
//     rest of a statement or pipeline (no timeout of PostgreSQL applies
//     there): tcp_user_timeout and keepalive probes end the session, on a
//     direct connection (not through a proxy that answers for the client).
//   - a lock wait of the relay's own transaction longer than 2d fails
//     (lock_timeout) and the transaction runs again (txRetry), so that a
//     lock neither bound frees does not block it without end: past
//     Config.MaxSaveFailure, Run returns a *SaveFailureError.
func txBounds(d time.Duration) pgjournal.TxBounds {
	return pgjournal.TxBounds{IdleTimeout: d, PeerTimeout: d, LockTimeout: 2 * d}
}

// lockTimedOut reports whether err is a lock wait that lock_timeout ended
// (SQLSTATE 55P03): the transaction was rolled back whole.
func lockTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.LockNotAvailable
}

// idleTimedOut reports whether err is the end of the transaction's session
// by idle_in_transaction_session_timeout (SQLSTATE 25P03): the transaction
// sat idle for the lease's session timeout, its COMMIT not yet sent (the
// store's save in it waited on another connection, for a synchronous
// standby not back yet after a failover, say), and was rolled back whole.
// The pool replaces the connection.
func idleTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.IdleInTransactionSessionTimeout
}

// txRetry runs a transaction of the tx sink again after a lock timeout or
// an idle timeout (both roll it back whole), or after a commit still in
// doubt when run again (store.ErrInDoubt: its reply lost, and the earlier
// commit not yet confirmed on the synchronous standbys, which may be
// down), until one commits or no commit has
// succeeded for Config.MaxSaveFailure. It reports the failures through the
// relay's logger and Stats, as the window does for a committer's saves.
type txRetry struct {
	r     *Relay
	since time.Time // when the failing series began; zero while commits succeed
}

// run calls attempt until it returns anything but a lock timeout, an idle
// timeout or a commit in doubt.
func (t *txRetry) run(ctx context.Context, attempt func() (uint64, error)) (uint64, error) {
	for {
		began := time.Now()
		done, err := attempt()
		if !(lockTimedOut(err) || idleTimedOut(err) || errors.Is(err, store.ErrInDoubt)) || ctx.Err() != nil {
			if err == nil && !t.since.IsZero() {
				t.since = time.Time{}
				t.r.setLastSaveError(nil)
				t.r.log.Info("relay: saving the offsets works again", "outbox", t.r.cfg.Outbox)
			}
			return done, err
		}
		t.r.txSaveErrors.Add(1)
		t.r.setLastSaveError(err)
		if t.since.IsZero() {
			t.since = began
			t.r.log.Warn("relay: a transaction waited too long for a lock, sat idle too long, or its commit is in doubt; it runs again",
				"outbox", t.r.cfg.Outbox, "err", err, "max_save_failure", t.r.cfg.MaxSaveFailure)
		}
		if now := time.Now(); now.Sub(t.since) > t.r.cfg.MaxSaveFailure {
			return 0, &SaveFailureError{Outbox: t.r.cfg.Outbox, Since: t.since, For: now.Sub(t.since), Err: err}
		}
	}
}
