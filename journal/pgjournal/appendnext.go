package pgjournal

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal"
)

// AppendNext implements journal.NextAppender in one round trip: under
// pg_advisory_xact_lock on the persistence id (see streamLockClass), an
// INSERT … SELECT … WHERE NOT EXISTS that writes the row only when the
// stream has nothing at or above its sequence number (with WithCitus, a
// check statement and the plain insert), all in one implicit transaction
// (a pgx batch with one Sync), when the handle can send a batch
// (*pgxpool.Pool, *pgx.Conn and pgx.Tx can); a DBTX of the caller's own
// that cannot gets the conditional insert alone, without the lock.
//
// The lock is what makes the step atomic. A statement reads the table as
// of its start; without the lock, a writer whose insert stalls (a slow
// trigger, a descheduled backend) could miss rows that another writer
// committed at and above its sequence number and then pruned below the
// highest, and insert under them. With it, writers of one stream run their
// check one after another, each after the previous one committed, so a
// stale writer always sees the newer rows and is refused. Inside a
// caller's transaction the lock is held until that transaction ends.
//
// In a caller's transaction (a pgx.Tx) under REPEATABLE READ or
// SERIALIZABLE, the insert's check reads the transaction's snapshot, not
// one taken after the lock: AppendNext then appends the event, if the
// check passes, and returns an error matching journal.ErrUnverified, so
// that the caller checks the stream's head through another connection
// before it commits (the offset store's SaveTx does). WithCitus it does so
// at those levels on any handle (see the package documentation).
func (j *Journal) AppendNext(ctx context.Context, ev journal.Event) error {
	return j.appendWith(ctx, ev, j.nextRule())
}

// AppendSuccessor implements journal.SuccessorAppender: AppendNext with
// one more condition in the same statement, that the row before the event
// is the stream's newest and live (one more index probe). When the event
// is refused, one more read, on the same connection where the handle has
// one (a pool's is kept for it: the same server), tells a stream ahead (a
// conflict) from one behind (journal.ErrBaseMissing). When that read
// fails (in a caller's transaction that the refusal aborted, WithCitus,
// it cannot run), the refusal is reported as a conflict, wrapping the
// read's error: the caller reads the stream outside to tell.
func (j *Journal) AppendSuccessor(ctx context.Context, ev journal.Event) error {
	return j.appendWith(ctx, ev, j.succRule())
}

// whyRefused tells, after the successor ev was refused with err (a
// superseded conflict), a stream ahead (err) from one behind
// (*journal.BaseMissingError), reading the stream's highest sequence
// number through db. Any other err is returned as it is.
func (j *Journal) whyRefused(ctx context.Context, db DBTX, ev *journal.Event, err error) error {
	var ce *journal.ConflictError
	if !errors.As(err, &ce) || !ce.Superseded {
		return err
	}
	highest, herr := j.highestOn(ctx, db, ev.PersistenceID)
	if herr != nil {
		return fmt.Errorf("%w (refused; reading the stream's highest sequence number to tell why: %w)", err, herr)
	}
	if highest >= ev.SequenceNr {
		return err
	}
	return &journal.BaseMissingError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Highest: highest}
}

// appendRule is the statements of a conditional append: the insert (which
// stands aside under REPEATABLE READ and SERIALIZABLE), the insert alone,
// and the check WithCitus.
type appendRule struct{ insert, alone, check string }

func (j *Journal) nextRule() *appendRule { return &j.next }
func (j *Journal) succRule() *appendRule { return &j.succ }

// appendWith is a conditional append by rule r: on a pool, on one
// connection of it (appendNextPooled); on a connection, watching it
// (appendNextOn); on any other handle, through it.
func (j *Journal) appendWith(ctx context.Context, ev journal.Event, r *appendRule) error {
	if err := journal.ValidateEvent(ev); err != nil {
		return err
	}
	if j.err != nil {
		return j.err
	}
	switch db := j.db.(type) {
	case *pgxpool.Pool:
		return j.appendNextPooled(ctx, db, &ev, r)
	case *pgx.Conn:
		return j.appendNextOn(ctx, db, db, false, &ev, r)
	}
	return j.refused(ctx, j.db, &ev, r, j.appendNext(ctx, j.db, nil, &ev, r))
}

// refused is err, the outcome of appending ev by rule r through db, told
// apart by whyRefused for a successor.
func (j *Journal) refused(ctx context.Context, db DBTX, ev *journal.Event, r *appendRule, err error) error {
	if r != &j.succ || err == nil {
		return err
	}
	return j.whyRefused(ctx, db, ev, err)
}

// appendNext is a conditional append by rule r through db; own, when not
// nil, is db as a connection of the journal's own (a pool's), outside any
// caller's transaction, which it may begin a READ COMMITTED transaction
// on.
func (j *Journal) appendNext(ctx context.Context, db DBTX, own TxBeginner, ev *journal.Event, r *appendRule) error {
	superseded := &journal.ConflictError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Superseded: true}
	tag, checked, err := j.insertNext(ctx, db, own, ev, r)
	if err != nil {
		if errors.Is(err, journal.ErrUnverified) {
			return err
		}
		if checked != nil {
			superseded.Err = checked
			return superseded
		}
		return j.interpretError(ctx, "append", err, []journal.Event{*ev})
	}
	if tag.RowsAffected() == 0 {
		return superseded
	}
	return nil
}

// streamLockClass is the first key of the transaction-level advisory lock
// AppendNext takes on a stream: pg_advisory_xact_lock(streamLockClass,
// hashtext(persistence_id)). The two-key form has a key space of its own,
// apart from the one-bigint form, so it cannot meet a lock taken with one
// key. Two streams whose ids hash alike share a lock, which only makes
// their appends take turns. The value spells "ofst".
const streamLockClass = 0x6f667374

// batcher is what AppendNext needs to send the lock and the insert in one
// round trip.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// supersededMark starts the text that AppendNext's check fails to cast
// when the stream is ahead.
const supersededMark = "offsetstore: stream ahead, highest "

// insertNext runs AppendNext's statements. checked is the check's error
// when the check refused the event (the stream is ahead); err is then not
// nil too.
func (j *Journal) insertNext(ctx context.Context, db DBTX, own TxBeginner, ev *journal.Event, r *appendRule) (tag pgconn.CommandTag, checked, err error) {
	b, ok := db.(batcher)
	if !ok {
		tag, err = j.insertOne(ctx, db, r.alone, ev)
		return tag, nil, err
	}
	tags := ev.Tags
	if tags == nil {
		tags = []string{} // nil would be NULL
	}
	if j.citus {
		return j.insertNextCitus(ctx, b, ev, tags, r)
	}
	// The insert stands aside (inserts nothing) under REPEATABLE READ or
	// SERIALIZABLE, where its check would read a snapshot that may predate
	// rows another writer committed (and pruned) before the lock: the
	// transaction's, in a caller's transaction; one taken before the lock
	// was granted, in an implicit one.
	tag, err = j.lockAndInsert(ctx, b, r.insert, ev, tags)
	if err != nil || tag.RowsAffected() > 0 {
		return tag, nil, err
	}
	var isolation string
	if err := db.QueryRow(ctx, sqlIsolation).Scan(&isolation); err != nil {
		return tag, nil, err
	}
	if !snapshotBeforeLock(isolation) {
		return tag, nil, nil // the stream is ahead
	}
	if own != nil {
		// No caller's transaction to keep: write in one of READ
		// COMMITTED, whose insert takes its snapshot after the lock.
		tag, err = j.insertReadCommitted(ctx, own, ev, tags, r)
		return tag, nil, err
	}
	// The checks read the transaction's snapshot, which may predate rows
	// of other writers (ahead) and this writer's own newest (the row a
	// successor follows): only the one against rows at or above the event
	// is made, and the caller checks the stream outside (ErrUnverified).
	if tag, err = j.lockAndInsert(ctx, b, j.next.alone, ev, tags); err != nil || tag.RowsAffected() == 0 {
		return tag, nil, err
	}
	return tag, nil, unverified(ev, isolation)
}

// unverified is the error of an append checked only against the snapshot
// of a transaction at isolation.
func unverified(ev *journal.Event, isolation string) error {
	return fmt.Errorf("%w: persistence id %q, sequence nr %d (checked against the snapshot of a %s transaction)", journal.ErrUnverified, ev.PersistenceID, ev.SequenceNr, isolation)
}

// insertReadCommitted runs AppendNext's lock and insert in a READ
// COMMITTED transaction of its own on db.
func (j *Journal) insertReadCommitted(ctx context.Context, db TxBeginner, ev *journal.Event, tags []string, r *appendRule) (pgconn.CommandTag, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := j.lockAndInsert(ctx, tx, r.alone, ev, tags)
	if err != nil || tag.RowsAffected() == 0 {
		return tag, err
	}
	return tag, tx.Commit(ctx)
}

// sqlIsolation reads the transaction's isolation level.
const sqlIsolation = `SELECT current_setting('transaction_isolation')`

// snapshotBeforeLock reports whether a transaction at isolation (a value
// of current_setting('transaction_isolation')) reads one snapshot for all
// its statements, so that a check after the stream's lock may read rows
// as they were before it: REPEATABLE READ and SERIALIZABLE.
func snapshotBeforeLock(isolation string) bool {
	return isolation == "repeatable read" || isolation == "serializable"
}

// insertNextCitus is insertNext WithCitus: the lock, the check and the
// plain insert in one batch.
func (j *Journal) insertNextCitus(ctx context.Context, b batcher, ev *journal.Event, tags []string, r *appendRule) (tag pgconn.CommandTag, checked, err error) {
	batch := &pgx.Batch{}
	batch.Queue(j.sqlLockStreamCitus, ev.PersistenceID)
	batch.Queue(r.check, ev.PersistenceID, int64(ev.SequenceNr))
	batch.Queue(j.sqlInsertOne, ev.PersistenceID, int64(ev.SequenceNr), nonNil(ev.Payload), ev.Manifest, ev.WriterUUID, tags)
	br := b.SendBatch(ctx, batch)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	var isolation string
	if err = br.QueryRow().Scan(nil, &isolation); err != nil {
		return tag, nil, err
	}
	if _, err = br.Exec(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, supersededMark) {
			return tag, err, err
		}
		return tag, nil, err
	}
	if tag, err = br.Exec(); err != nil {
		return tag, nil, err
	}
	if snapshotBeforeLock(isolation) {
		// Appended under the lock, but checked against a snapshot that may
		// be older than it. Close first: in an implicit transaction the
		// commit's outcome comes with the end of the batch, and an insert
		// whose commit failed must not be reported as appended.
		if err = br.Close(); err != nil {
			return tag, nil, err
		}
		return tag, nil, unverified(ev, isolation)
	}
	return tag, nil, nil
}

// lockAndInsert sends the stream's lock and insert, one of the
// conditional inserts, in one batch, and returns the insert's tag.
func (j *Journal) lockAndInsert(ctx context.Context, b batcher, insert string, ev *journal.Event, tags []string) (tag pgconn.CommandTag, err error) {
	batch := &pgx.Batch{}
	batch.Queue(j.sqlLockStream, ev.PersistenceID)
	batch.Queue(insert, ev.PersistenceID, int64(ev.SequenceNr), nonNil(ev.Payload), ev.Manifest, ev.WriterUUID, tags)
	br := b.SendBatch(ctx, batch)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err = br.Exec(); err != nil {
		return tag, err
	}
	return br.Exec()
}
