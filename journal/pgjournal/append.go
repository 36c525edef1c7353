package pgjournal

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/outboxkit/offsetstore/journal"
)

// Append implements journal.Journal. The whole batch is one statement:
// INSERT … SELECT FROM unnest(arrays) for small batches, COPY for large
// ones. Either is atomic on its own.
func (j *Journal) Append(ctx context.Context, events ...journal.Event) error {
	if err := journal.ValidateEvents(events); err != nil {
		return err
	}
	if j.err != nil {
		return j.err
	}
	if len(events) == 0 {
		return nil
	}
	var err error
	if j.useCopy(events) {
		err = j.copyEvents(ctx, events)
	} else {
		err = j.insertEvents(ctx, events)
	}
	if err != nil {
		return j.interpretError(ctx, "append", err, events)
	}
	return nil
}

// useCopy reports whether Append sends events with COPY (see
// defaultCopyThreshold).
func (j *Journal) useCopy(events []journal.Event) bool {
	if len(events) >= j.copyThreshold {
		return true
	}
	if len(events) == 1 {
		return false
	}
	size := 0
	for i := range events {
		if size += len(events[i].Payload); size >= j.copyMinBytes {
			return true
		}
	}
	return false
}

// insertOne runs sql, a single-row insert whose parameters are the
// columns of copyColumns in order, for ev.
func (j *Journal) insertOne(ctx context.Context, db DBTX, sql string, ev *journal.Event) (pgconn.CommandTag, error) {
	tags := ev.Tags
	if tags == nil {
		tags = []string{} // nil would be NULL
	}
	return db.Exec(ctx, sql, ev.PersistenceID, int64(ev.SequenceNr), nonNil(ev.Payload), ev.Manifest, ev.WriterUUID, tags)
}

func (j *Journal) insertEvents(ctx context.Context, events []journal.Event) error {
	if len(events) == 1 {
		_, err := j.insertOne(ctx, j.db, j.sqlInsertOne, &events[0])
		return err
	}
	n := len(events)
	pids := make([]string, n)
	seqs := make([]int64, n)
	payloads := make([][]byte, n)
	manifests := make([]string, n)
	writers := make([]string, n)
	tags := make([]string, n)
	// Each event's tags travel as one text[] literal, cast back in SQL
	// (a text[][] must be rectangular). All literals share one buffer.
	var size int
	for i := range events {
		for _, tag := range events[i].Tags {
			size += len(tag) + 3
		}
	}
	buf := make([]byte, 0, size+2*n)
	ends := make([]int, n)
	for i := range events {
		ev := &events[i]
		pids[i] = ev.PersistenceID
		seqs[i] = int64(ev.SequenceNr)
		payloads[i] = nonNil(ev.Payload)
		manifests[i] = ev.Manifest
		writers[i] = ev.WriterUUID
		buf = appendArrayLiteral(buf, ev.Tags)
		ends[i] = len(buf)
	}
	all := string(buf)
	start := 0
	for i, end := range ends {
		tags[i] = all[start:end]
		start = end
	}
	_, err := j.db.Exec(ctx, j.sqlInsert, pids, seqs, payloads, manifests, writers, tags)
	return err
}

// appendArrayLiteral appends tags as a PostgreSQL array literal, every
// element quoted (so that NULL, empty strings, commas and braces are
// data), with backslash and double quote escaped.
func appendArrayLiteral(buf []byte, tags []string) []byte {
	buf = append(buf, '{')
	for i, tag := range tags {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		for k := 0; k < len(tag); k++ {
			if c := tag[k]; c == '"' || c == '\\' {
				buf = append(buf, '\\')
			}
			buf = append(buf, tag[k])
		}
		buf = append(buf, '"')
	}
	return append(buf, '}')
}

func (j *Journal) copyEvents(ctx context.Context, events []journal.Event) error {
	// pgx encodes each row before asking for the next, so one slice serves
	// every row.
	row := make([]any, len(copyColumns))
	src := pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
		ev := &events[i]
		tags := ev.Tags
		if tags == nil {
			tags = []string{} // nil would be NULL
		}
		row[0] = ev.PersistenceID
		row[1] = int64(ev.SequenceNr)
		row[2] = nonNil(ev.Payload)
		row[3] = ev.Manifest
		row[4] = ev.WriterUUID
		row[5] = tags
		return row, nil
	})
	_, err := j.db.CopyFrom(ctx, j.ident, copyColumns, src)
	return err
}
