package pgjournal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/journal"
)

// interpretError is the one place where driver errors become journal
// errors. op names the method for the message; events is the batch of an
// Append, nil otherwise.
//
//   - A unique violation of the (persistence_id, sequence_nr) key during
//     Append is a *journal.ConflictError (matching
//     journal.ErrSequenceConflict) naming the duplicate event, with the
//     *pgconn.PgError as its Err. The key is recognised by the column list
//     in the error's detail, which PostgreSQL never translates, so the
//     table's own primary key, its partitions' and any unique index on
//     exactly those columns count; when the detail is missing (a role
//     without SELECT on the table does not get it), by a constraint name
//     ending in _pkey. A unique violation of any other index is not a
//     conflict: it is a plain error naming the constraint.
//     Citus reports such a violation inside a COPY or an INSERT … SELECT
//     on a distributed table as an internal error (XX000) with the same
//     detail; it counts too.
//   - A serialization failure (40001, what the loser of a race gets under
//     SERIALIZABLE instead of a unique violation) or a deadlock (40P01)
//     during Append is a *journal.RolledBackError (matching
//     journal.ErrRolledBack): the statement wrote nothing.
//   - When ctx is done, the error matches ctx.Err() with errors.Is, even
//     when the driver reported it otherwise (a broken connection, or the
//     server's "canceling statement due to user request").
//   - An unknown column xact_id (a table migrated only up to 000002) says
//     that the feed needs migration 000003.
//   - Anything else is wrapped as "pgjournal: <op>: <err>".
func (j *Journal) interpretError(ctx context.Context, op string, err error, events []journal.Event) error {
	var pgErr *pgconn.PgError
	if events != nil && errors.As(err, &pgErr) {
		code := pgErr.Code
		if code == pgerrcode.InternalError && strings.Contains(pgErr.Detail, keyColumns) {
			// Citus reports a unique violation inside a COPY or an
			// INSERT … SELECT on a distributed table as an internal
			// error, with the worker's detail.
			code = pgerrcode.UniqueViolation
		}
		switch code {
		case pgerrcode.UniqueViolation:
			if isSequenceKey(pgErr) {
				pid, seq := locateConflict(pgErr.Detail, events)
				return &journal.ConflictError{PersistenceID: pid, SequenceNr: seq, Err: pgErr}
			}
			return fmt.Errorf("pgjournal: %s: unique violation of constraint %q, which is not the (persistence_id, sequence_nr) key: %w", op, pgErr.ConstraintName, err)
		case pgerrcode.SerializationFailure, pgerrcode.DeadlockDetected:
			rb := &journal.RolledBackError{Err: pgErr}
			if len(events) == 1 {
				rb.PersistenceID, rb.SequenceNr = events[0].PersistenceID, events[0].SequenceNr
			}
			return rb
		}
	}
	if !j.citus && errors.As(err, &pgErr) && pgErr.Code == pgerrcode.FeatureNotSupported {
		return fmt.Errorf("pgjournal: %s: %w (on a Citus distributed table, make the journal with pgjournal.WithCitus())", op, err)
	}
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedColumn && strings.Contains(pgErr.Message, "xact_id") {
		return fmt.Errorf("pgjournal: %s: %w (the feed needs the column of migrations/000003: apply the migrations)", op, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("pgjournal: %s: %w (%w)", op, ctxErr, err)
	}
	return fmt.Errorf("pgjournal: %s: %w", op, err)
}

// isSequenceKey reports whether a unique violation is one of the
// (persistence_id, sequence_nr) key.
func isSequenceKey(e *pgconn.PgError) bool {
	if e.Detail != "" {
		return strings.Contains(e.Detail, keyColumns)
	}
	return strings.HasSuffix(e.ConstraintName, "_pkey")
}

// keyColumns is how PostgreSQL names the primary key in the detail of a
// unique violation, e.g. `Key (persistence_id, sequence_nr)=(a, 5) already
// exists.` The column list is not translated; the words around it are
// (lc_messages).
const keyColumns = "(persistence_id, sequence_nr)=("

// locateConflict names the event of the batch that violated the primary
// key.
//
// A batch of one event names that event. Otherwise the key is read from
// the detail, `Key (persistence_id, sequence_nr)=(<pid>, <seq>) already
// exists.` in English. PostgreSQL prints the persistence id as it is,
// unquoted, so an id may itself contain ", ", ")", digits, or the whole
// message; and with lc_messages in another language the words around the
// key differ. What is certain: the column list is not translated, so the
// first keyColumns ends the prefix; seq is digits followed by ")"; and the
// words after the key contain no ", <digits>)". So the last ", <digits>)"
// of the detail ends the persistence id, whatever the id and the language.
// The reading is checked against the batch; should it name no event (a
// changed message format), the ", <digits>)" before it are tried in turn.
//
// When the detail is missing (a role without SELECT on the table does not
// get it) or names no event of the batch, the conflict names the batch's
// persistence id if all its events share one, and sequence nr 0
// (unknown); otherwise neither.
func locateConflict(detail string, events []journal.Event) (string, uint64) {
	if len(events) == 1 {
		return events[0].PersistenceID, events[0].SequenceNr
	}
	if i := strings.Index(detail, keyColumns); i >= 0 {
		key := detail[i+len(keyColumns):]
		for end := len(key); end > 0; {
			k := strings.LastIndex(key[:end], ", ")
			if k < 0 {
				break
			}
			digits := key[k+2:]
			if n := strings.IndexByte(digits, ')'); n > 0 {
				if pid, seq, ok := inBatch(events, key[:k], digits[:n]); ok {
					return pid, seq
				}
			}
			end = k
		}
	}
	pid := events[0].PersistenceID
	for _, ev := range events[1:] {
		if ev.PersistenceID != pid {
			return "", 0
		}
	}
	return pid, 0
}

// inBatch reports whether (pid, digits) is the key of an event of the
// batch.
func inBatch(events []journal.Event, pid, digits string) (string, uint64, bool) {
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return "", 0, false
	}
	for i := range events {
		if events[i].SequenceNr == seq && events[i].PersistenceID == pid {
			return events[i].PersistenceID, seq, true
		}
	}
	return "", 0, false
}
