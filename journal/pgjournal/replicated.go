package pgjournal

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal"
)

var (
	_ journal.ReplicatedReader    = (*Journal)(nil)
	_ journal.ReplicationReporter = (*Journal)(nil)
)

// sqlConfirm is the confirmation of ReadReplicated: an implicit
// transaction that gets a transaction id and writes a WAL record (a
// transactional logical-decoding message, prefix "offsetstore", empty), so
// that its commit writes a commit record and waits for the synchronous
// standbys up to it, as the session's synchronous_commit says, and so for
// every WAL record written before it on the server. A transaction that
// only gets an id (SELECT pg_current_xact_id()) writes no WAL before its
// commit record and then commits without waiting for the standbys.
// pg_logical_emit_message needs no privilege and works at every wal_level
// from replica on (a logical decoding client sees the message: prefix
// offsetstore, empty content).
const sqlConfirm = `SELECT pg_logical_emit_message(true, 'offsetstore', '')`

// ReadReplicated implements journal.ReplicatedReader. On a pool it
// acquires one connection and runs read with a Journal bound to it; on a
// *pgx.Conn or a *pgxpool.Conn it uses that connection, which must not be
// inside a transaction. Given a pgx.Tx (whose rows are not committed) or
// a DBTX of the caller's own, it fails with an error matching
// journal.ErrInvalidArgument, before calling read (the offset store then
// reads without confirming).
//
// The confirmation, when read returns true, is one more statement on the
// same connection (sqlConfirm): its commit waits for the synchronous
// standbys. When the server warns that it stopped waiting (see
// ConfigurePool: counted on connections it prepared), the error matches
// journal.ErrNotReplicated. While a synchronous standby is down the
// confirmation waits for it, until ctx ends.
//
// WithCitus, read runs and no confirmation follows: the rows live on the
// workers, whose standbys a commit on the coordinator does not wait for.
// A failover of a Citus node is not covered.
func (j *Journal) ReadReplicated(ctx context.Context, read func(j journal.Journal) (confirm bool, err error)) error {
	if j.err != nil {
		return j.err
	}
	if read == nil {
		return &journal.InvalidArgumentError{Field: "read", Reason: "is nil"}
	}
	switch db := j.db.(type) {
	case *pgxpool.Pool:
		c, err := db.Acquire(ctx)
		if err != nil {
			return j.interpretError(ctx, "read replicated", err, nil)
		}
		err = j.readReplicated(ctx, c.Conn(), read)
		release(c, err)
		return err
	case *pgxpool.Conn:
		return j.readReplicated(ctx, db.Conn(), read)
	case *pgx.Conn:
		return j.readReplicated(ctx, db, read)
	}
	return &journal.InvalidArgumentError{Field: "database handle",
		Reason: fmt.Sprintf("ReadReplicated needs a *pgxpool.Pool, a *pgxpool.Conn or a *pgx.Conn outside a transaction, not %T", j.db)}
}

func (j *Journal) readReplicated(ctx context.Context, conn *pgx.Conn, read func(j journal.Journal) (bool, error)) error {
	on := *j
	on.db, on.watched = conn, nil
	confirm, err := read(&on)
	if err != nil || !confirm || j.citus {
		return err
	}
	if s := conn.PgConn().TxStatus(); s != 'I' {
		return &journal.InvalidArgumentError{Field: "database handle", Reason: "ReadReplicated needs a connection outside a transaction, whose reads are of committed rows"}
	}
	st := stateOf(conn.PgConn())
	before := st.warnings()
	if _, err := conn.Exec(ctx, sqlConfirm); err != nil {
		return j.interpretError(ctx, "confirm replication", err, nil)
	}
	if st.warnings() != before {
		return fmt.Errorf("pgjournal: confirm replication: %w (the server warned that it stopped waiting for the synchronous standbys)", journal.ErrNotReplicated)
	}
	return nil
}

// Replicated implements journal.ReplicationReporter for a Journal made on
// a pgx.Tx whose connection ConfigurePool (or ConfigureConn) prepared: an
// error matching journal.ErrNotReplicated when the server warned, on the
// transaction's connection since New, that it stopped waiting for the
// synchronous standbys (at the transaction's COMMIT, called after it). It
// returns nil otherwise, and for every other handle.
func (j *Journal) Replicated() error {
	if j.watched == nil || j.watched.warnings() == j.watchedFrom {
		return nil
	}
	return fmt.Errorf("pgjournal: commit: %w (the server warned that it stopped waiting for the synchronous standbys)", journal.ErrNotReplicated)
}

// watch records, for a Journal made on a transaction, its connection's
// warning count, for Replicated.
func (j *Journal) watch(db DBTX) {
	tx, ok := db.(pgx.Tx)
	if !ok {
		return
	}
	c := tx.Conn()
	if c == nil {
		return
	}
	if st := stateOf(c.PgConn()); st != nil {
		j.watched, j.watchedFrom = st, st.warnings()
	}
}

// appendNextPooled is AppendNext on a pool: on one connection of it, whose
// warnings are watched, and which it may begin a transaction on.
func (j *Journal) appendNextPooled(ctx context.Context, pool *pgxpool.Pool, ev *journal.Event, r *appendRule) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return j.interpretError(ctx, "append", err, []journal.Event{*ev})
	}
	err = j.appendNextOn(ctx, c.Conn(), c.Conn(), true, ev, r)
	release(c, err)
	return err
}

// appendNextOn runs AppendNext through db on conn, its connection, whose
// warnings are watched: a write the server committed while warning that
// it stopped waiting for the synchronous standbys fails with
// journal.ErrNotReplicated. With own, conn is the journal's own (a pool's),
// outside any caller's transaction: it may begin a READ COMMITTED
// transaction on it.
func (j *Journal) appendNextOn(ctx context.Context, db DBTX, conn *pgx.Conn, own bool, ev *journal.Event, r *appendRule) error {
	st := stateOf(conn.PgConn())
	before := st.warnings()
	var begin TxBeginner
	if own {
		begin = conn
	}
	err := j.appendNext(ctx, db, begin, ev, r)
	if st != nil && st.warnings() != before && (err == nil || errors.Is(err, journal.ErrUnverified)) {
		return fmt.Errorf("pgjournal: append persistence id %q, sequence nr %d: %w (the server committed it, and warned that it stopped waiting for the synchronous standbys)",
			ev.PersistenceID, ev.SequenceNr, journal.ErrNotReplicated)
	}
	return j.refused(ctx, db, ev, r, err)
}
