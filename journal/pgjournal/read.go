package pgjournal

import (
	"context"
	"errors"
	"iter"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
)

// Replay implements journal.Journal. It runs one SELECT and streams its
// rows; breaking out of the loop closes them. The parameter max of the
// interface is called limit here.
func (j *Journal) Replay(ctx context.Context, persistenceID string, fromSeq, toSeq, limit uint64) iter.Seq2[journal.Event, error] {
	return func(yield func(journal.Event, error) bool) {
		if err := j.check(persistenceID); err != nil {
			yield(journal.Event{}, err)
			return
		}
		from, to := fromSeq, journal.ClampSequenceNr(toSeq)
		if limit == 0 || from > to {
			if err := ctx.Err(); err != nil {
				yield(journal.Event{}, err)
			}
			return
		}
		var lim any // NULL: no limit
		if limit < math.MaxInt64 {
			lim = int64(limit)
		}
		rows, err := j.db.Query(ctx, j.sqlReplay, persistenceID, int64(from), int64(to), lim)
		if err != nil {
			yield(journal.Event{}, j.interpretError(ctx, "replay", err, nil))
			return
		}
		defer rows.Close()
		var s rowScanner
		// pgx reads rows ahead into its buffer and does not look at ctx
		// while serving them: check it before every row.
		done := ctx.Done()
		for rows.Next() {
			select {
			case <-done:
				rows.Close()
				yield(journal.Event{}, j.interpretError(ctx, "replay", ctx.Err(), nil))
				return
			default:
			}
			ev, err := s.scan(rows, persistenceID)
			if err != nil {
				rows.Close()
				yield(journal.Event{}, j.interpretError(ctx, "replay", err, nil))
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(journal.Event{}, j.interpretError(ctx, "replay", err, nil))
		}
	}
}

// HighestSequenceNr implements journal.Journal with one index lookup.
func (j *Journal) HighestSequenceNr(ctx context.Context, persistenceID string) (uint64, error) {
	if err := j.check(persistenceID); err != nil {
		return 0, err
	}
	return j.highestOn(ctx, j.db, persistenceID)
}

// highestOn is HighestSequenceNr through db.
func (j *Journal) highestOn(ctx context.Context, db DBTX, persistenceID string) (uint64, error) {
	var highest int64
	if err := db.QueryRow(ctx, j.sqlHighest, persistenceID).Scan(&highest); err != nil {
		return 0, j.interpretError(ctx, "highest sequence nr", err, nil)
	}
	return uint64(highest), nil
}

// Last implements journal.Journal: one SELECT reading the index backwards.
func (j *Journal) Last(ctx context.Context, persistenceID string) (journal.Event, bool, error) {
	if err := j.check(persistenceID); err != nil {
		return journal.Event{}, false, err
	}
	ev := journal.Event{PersistenceID: persistenceID}
	var seq int64
	err := j.db.QueryRow(ctx, j.sqlLast, persistenceID).
		Scan(&seq, &ev.Payload, &ev.Manifest, &ev.WriterUUID, &ev.Tags, &ev.WrittenAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return journal.Event{}, false, nil
	}
	if err != nil {
		return journal.Event{}, false, j.interpretError(ctx, "last", err, nil)
	}
	ev.SequenceNr = uint64(seq)
	ev.Payload = nonNil(ev.Payload)
	return ev, true, nil
}

// Head implements journal.HeadReader in one statement: the highest
// sequence number and the newest live row, read from one snapshot.
func (j *Journal) Head(ctx context.Context, persistenceID string) (journal.Head, error) {
	if err := j.check(persistenceID); err != nil {
		return journal.Head{}, err
	}
	var (
		highest *int64
		seq     *int64
		ev      = journal.Event{PersistenceID: persistenceID}
		man     *string
		writer  *string
		tags    []string
		at      *time.Time
	)
	err := j.db.QueryRow(ctx, j.sqlHead, persistenceID).
		Scan(&highest, &seq, &ev.Payload, &man, &writer, &tags, &at)
	if err != nil {
		return journal.Head{}, j.interpretError(ctx, "head", err, nil)
	}
	var h journal.Head
	if highest != nil {
		h.Highest = uint64(*highest)
	}
	if seq != nil {
		ev.SequenceNr = uint64(*seq)
		ev.Payload = nonNil(ev.Payload)
		ev.Manifest, ev.WriterUUID, ev.Tags = *man, *writer, tags
		ev.WrittenAt = *at
		h.Last, h.HasLast = ev, true
	}
	return h, nil
}

// DeleteTo implements journal.Journal in one statement: it deletes the
// events up to toSeq below the highest, and marks the highest deleted when
// toSeq reaches it, keeping its payload.
func (j *Journal) DeleteTo(ctx context.Context, persistenceID string, toSeq uint64) error {
	if err := j.check(persistenceID); err != nil {
		return err
	}
	to := journal.ClampSequenceNr(toSeq)
	if to == 0 {
		return ctx.Err() // no event has a sequence nr of 0
	}
	var highest *int64
	if err := j.db.QueryRow(ctx, j.sqlDelete, persistenceID, int64(to)).Scan(&highest); err != nil {
		return j.interpretError(ctx, "delete", err, nil)
	}
	if highest == nil || *highest > int64(to) {
		return nil
	}
	if _, err := j.db.Exec(ctx, j.sqlMarkDeleted, persistenceID, *highest); err != nil {
		return j.interpretError(ctx, "delete", err, nil)
	}
	return nil
}
