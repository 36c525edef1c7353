package pgjournal

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
)

// TxBounds are server-side bounds on one transaction, for a writer whose
// client may vanish without a word (no FIN, no RST: a cable, a firewall, a
// frozen host) in the middle of it. Such a transaction keeps its locks on
// the server, the offsets stream's lock that AppendNext takes among them,
// and blocks every later writer of the stream until the server notices:
// by default, when TCP keepalive gives up, after hours. Each bound is set
// for the transaction alone (set_config(…, true), as SET LOCAL does): the
// session, a pooled connection, is as it was once the transaction ends.
// A zero field leaves the session's setting alone.
type TxBounds struct {
	// IdleTimeout ends the session when the transaction waits longer than
	// this for the client's next statement
	// (idle_in_transaction_session_timeout), which rolls it back and frees
	// its locks: a client that vanished between two statements, or as its
	// COMMIT was on the way. A client that keeps the transaction idle
	// longer on purpose loses it.
	IdleTimeout time.Duration
	// LockTimeout fails a statement of the transaction that waits longer
	// than this for a lock (lock_timeout, SQLSTATE 55P03), so that a lock
	// held by a vanished writer the other bounds cannot end (behind a
	// TCP proxy that answers for it) fails the waiting writer instead of
	// blocking it without end.
	LockTimeout time.Duration
	// PeerTimeout ends the session when the client stops answering at the
	// TCP level for about this long: data sent to it unacknowledged
	// (tcp_user_timeout), or the keepalive probes of a quiet connection
	// unanswered (tcp_keepalives_idle and tcp_keepalives_interval of a
	// quarter of it, whole seconds, at least 1 s; tcp_keepalives_count
	// 3). It covers what IdleTimeout cannot: a client that vanished in the
	// middle of sending a statement or a pipeline (before its Sync), which
	// the server waits for without any timeout of its own. Ignored on a
	// Unix socket; it cannot see past a proxy (PgBouncer, a load balancer)
	// that keeps the server's connection up.
	PeerTimeout time.Duration
}

// TxBeginner begins transactions: *pgxpool.Pool and *pgx.Conn are one.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// BeginBounded begins a transaction on db as db.BeginTx(ctx, opts) does,
// with bounds set for that transaction alone, in the same round trip: one
// simple-protocol query, the BEGIN opts describe (or opts.BeginQuery)
// followed by
//
//	SELECT set_config('idle_in_transaction_session_timeout', '…', true), …
//
// for each non-zero bound. A negative bound, or a transaction option pgx
// does not name, is refused with an error matching
// journal.ErrInvalidArgument, before any I/O.
func BeginBounded(ctx context.Context, db TxBeginner, opts pgx.TxOptions, b TxBounds) (pgx.Tx, error) {
	if db == nil || reflect.ValueOf(db).Kind() == reflect.Pointer && reflect.ValueOf(db).IsNil() {
		return nil, &journal.InvalidArgumentError{Field: "database handle", Reason: "is nil (pass a *pgxpool.Pool or *pgx.Conn)"}
	}
	if b.IdleTimeout < 0 || b.LockTimeout < 0 || b.PeerTimeout < 0 {
		return nil, &journal.InvalidArgumentError{Field: "transaction bounds", Reason: "must not be negative"}
	}
	begin, err := beginSQL(opts)
	if err != nil {
		return nil, err
	}
	settings := b.settings()
	if len(settings) == 0 {
		return db.BeginTx(ctx, opts)
	}
	var q strings.Builder
	q.WriteString(begin)
	q.WriteString("; SELECT ")
	for i, s := range settings {
		if i > 0 {
			q.WriteString(", ")
		}
		// Names are constants, values integers formatted here: a
		// multi-statement query takes no parameters.
		q.WriteString("set_config('" + s.name + "', '" + strconv.FormatInt(s.value, 10) + "', true)")
	}
	return db.BeginTx(ctx, pgx.TxOptions{BeginQuery: q.String(), CommitQuery: opts.CommitQuery})
}

type setting struct {
	name  string
	value int64
}

// settings are the server settings of b, in milliseconds or seconds as
// each takes.
func (b TxBounds) settings() []setting {
	ms := func(d time.Duration) int64 { return max(d.Milliseconds(), 1) }
	var out []setting
	if b.IdleTimeout > 0 {
		out = append(out, setting{"idle_in_transaction_session_timeout", ms(b.IdleTimeout)})
	}
	if b.LockTimeout > 0 {
		out = append(out, setting{"lock_timeout", ms(b.LockTimeout)})
	}
	if b.PeerTimeout > 0 {
		probe := max(int64(b.PeerTimeout/4/time.Second), 1)
		out = append(out,
			setting{"tcp_user_timeout", ms(b.PeerTimeout)},
			setting{"tcp_keepalives_idle", probe},
			setting{"tcp_keepalives_interval", probe},
			setting{"tcp_keepalives_count", 3})
	}
	return out
}

// beginSQL is the BEGIN statement of opts, built as pgx builds it, from
// the values pgx names only.
func beginSQL(opts pgx.TxOptions) (string, error) {
	if opts.BeginQuery != "" {
		return opts.BeginQuery, nil
	}
	switch {
	case !slices.Contains([]pgx.TxIsoLevel{"", pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted, pgx.ReadUncommitted}, opts.IsoLevel):
		return "", &journal.InvalidArgumentError{Field: "isolation level", Reason: "is not one pgx names"}
	case !slices.Contains([]pgx.TxAccessMode{"", pgx.ReadWrite, pgx.ReadOnly}, opts.AccessMode):
		return "", &journal.InvalidArgumentError{Field: "access mode", Reason: "is not one pgx names"}
	case !slices.Contains([]pgx.TxDeferrableMode{"", pgx.Deferrable, pgx.NotDeferrable}, opts.DeferrableMode):
		return "", &journal.InvalidArgumentError{Field: "deferrable mode", Reason: "is not one pgx names"}
	}
	sql := "begin"
	if opts.IsoLevel != "" {
		sql += " isolation level " + string(opts.IsoLevel)
	}
	if opts.AccessMode != "" {
		sql += " " + string(opts.AccessMode)
	}
	if opts.DeferrableMode != "" {
		sql += " " + string(opts.DeferrableMode)
	}
	return sql, nil
}
