package pgjournal

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ConfigurePool prepares cfg, the config of a pool on a PostgreSQL that
// has synchronous standbys and fails over to one of them, for the journal
// and the offset store. Call it once, after pgxpool.ParseConfig and before
// pgxpool.NewWithConfig; it keeps the handlers cfg already has and runs
// them too. It installs:
//
//   - A notice handler that counts, per connection, the server's warnings
//     that say a wait for synchronous replication was cancelled (a
//     WARNING with SQLSTATE 01000 or 57P01: "canceling wait for
//     synchronous replication …", sent before the statement's success when
//     pg_cancel_backend, or a client's cancel request, interrupts a commit
//     that waits for the standbys). PostgreSQL then keeps the commit and
//     reports it committed, although the standbys may not have it.
//     AppendNext on the pool reports such a write with an error matching
//     journal.ErrNotReplicated instead of success, and a Journal made on a
//     transaction of the pool (New(tx)) reports its commit so
//     (journal.ReplicationReporter), so that the offset store confirms
//     the write on the standbys (ReadReplicated) before it acknowledges it.
//     Any other warning of those codes counts too: it costs a confirmation,
//     never a lost write.
//   - An error handler that closes a connection on which a statement fails
//     with SQLSTATE 25006 (read_only_sql_transaction): the server was made
//     read-only, as a demoted primary is, and pgx checks
//     target_session_attrs only when it connects. The pool then opens a new
//     connection, which a multi-host URL with
//     target_session_attrs=read-write takes to the new primary. (Any
//     statement that writes in a transaction the caller made read-only
//     closes its connection too: the pool replaces it.)
//
// Without it, a write whose wait for the standbys was cancelled by a
// cancel request is acknowledged (pgx returns success, as the server
// does), and a failover can lose it. A connection that is cut, or whose
// session is terminated, during that wait needs no handler: its write is
// in doubt and the store confirms it before adopting it either way.
func ConfigurePool(cfg *pgxpool.Config) {
	if cfg != nil {
		ConfigureConn(cfg.ConnConfig)
	}
}

// ConfigureConn is ConfigurePool for the config of a single connection
// (pgx.ConnectConfig).
func ConfigureConn(cfg *pgx.ConnConfig) {
	if cfg == nil {
		return
	}
	c := &cfg.Config
	afterConnect, onNotice, onPgError := c.AfterConnect, c.OnNotice, c.OnPgError
	c.AfterConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
		if afterConnect != nil {
			if err := afterConnect(ctx, pc); err != nil {
				return err
			}
		}
		if stateOf(pc) == nil {
			pc.CustomData()[connStateKey] = &connState{}
		}
		return nil
	}
	c.OnNotice = func(pc *pgconn.PgConn, n *pgconn.Notice) {
		if syncWarning(n) {
			if st := stateOf(pc); st != nil {
				st.syncWarnings.Add(1)
			}
		}
		if onNotice != nil {
			onNotice(pc, n)
		}
	}
	c.OnPgError = func(pc *pgconn.PgConn, e *pgconn.PgError) bool {
		if e.Code == pgerrcode.ReadOnlySQLTransaction {
			return false // close: the pool connects again, to a primary
		}
		if onPgError != nil {
			return onPgError(pc, e)
		}
		return !strings.EqualFold(e.Severity, "FATAL")
	}
}

// syncWarning reports whether n may say that a wait for synchronous
// replication was cancelled. PostgreSQL translates the message
// (lc_messages), not the severity's unlocalized form or the code: a
// cancelled wait is a WARNING of 01000 (the generic warning), a
// terminated one of 57P01 (admin shutdown).
func syncWarning(n *pgconn.Notice) bool {
	sev := n.SeverityUnlocalized
	if sev == "" {
		sev = n.Severity
	}
	return sev == "WARNING" && (n.Code == pgerrcode.Warning || n.Code == pgerrcode.AdminShutdown)
}

// connStateKey keys a connection's connState in pgconn's CustomData.
const connStateKey = "github.com/outboxkit/offsetstore/journal/pgjournal.connState"

// connState is what ConfigurePool's handlers learn about one connection.
type connState struct {
	// syncWarnings counts the warnings that may say a wait for
	// synchronous replication was cancelled (syncWarning). Atomic: a
	// transaction's Journal reads it after its commit, when the pool may
	// have handed the connection to another goroutine.
	syncWarnings atomic.Int64
}

// stateOf returns pc's state, nil when its config was not prepared by
// ConfigurePool or ConfigureConn. Only the goroutine that holds pc may
// call it (CustomData is a plain map).
func stateOf(pc *pgconn.PgConn) *connState {
	if pc == nil {
		return nil
	}
	st, _ := pc.CustomData()[connStateKey].(*connState)
	return st
}

// warnings returns the count of st, 0 for nil.
func (st *connState) warnings() int64 {
	if st == nil {
		return 0
	}
	return st.syncWarnings.Load()
}

// readOnly reports whether err is SQLSTATE 25006: the server refuses
// writes (a demoted primary, or a standby).
func readOnly(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ReadOnlySQLTransaction
}

// release gives c back to its pool, closing it first when err says its
// server refuses writes, so that the pool connects again (to the new
// primary, through a multi-host URL), whether or not ConfigurePool
// prepared the pool.
func release(c *pgxpool.Conn, err error) {
	if readOnly(err) {
		_ = c.Conn().Close(context.Background())
	}
	c.Release()
}
