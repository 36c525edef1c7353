package pgjournal

import (
	"context"
	"iter"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
)

// MaxReadStreamsBatch is the most streams one statement of ReadStreams
// reads (one batch of statements WithCitus): a call with more positions
// runs one round trip per MaxReadStreamsBatch of them, so that no
// statement sends an unbounded array.
const MaxReadStreamsBatch = 1000

var _ journal.StreamsReader = (*Journal)(nil)

// readStreamsSQL reads the streams of the arrays $1 (ids) and $2 (the
// positions above which to read): for each, in the order of the arrays, a
// probe of the primary key from its position, at most $3 live rows, and
// at most $4 rows in all. The planner knows that the function scan comes
// in ordinality order, so the ORDER BY is an incremental sort of each
// stream's few rows, and the LIMIT stops the probes once reached.
func readStreamsSQL(t string) string {
	return `SELECT e.sequence_nr, e.payload, e.manifest, e.writer_uuid, e.tags, e.written_at, p.pid
  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS p(pid, after, ord)
  CROSS JOIN LATERAL (
       SELECT sequence_nr, payload, manifest, writer_uuid, tags, written_at FROM ` + t + `
        WHERE persistence_id = p.pid AND sequence_nr > p.after AND NOT deleted
        ORDER BY sequence_nr
        LIMIT $3::bigint) AS e
 ORDER BY p.ord, e.sequence_nr
 LIMIT $4::bigint`
}

// ReadStreams implements journal.StreamsReader: one statement per
// MaxReadStreamsBatch streams, each stream one probe of the primary key
// from its position (an unnest of the ids and positions, a LATERAL read
// of each). With WithCitus, where Citus cannot push a LATERAL with a LIMIT
// down to the shards, each stream is a Replay statement routed to its
// shard, MaxReadStreamsBatch of them sent as one batch (one round trip);
// there the total is applied as the rows come.
func (j *Journal) ReadStreams(ctx context.Context, from []journal.Position, opts journal.ReadStreamsOptions) iter.Seq2[journal.Event, error] {
	return func(yield func(journal.Event, error) bool) {
		opts, err := journal.ValidateReadStreams(from, opts)
		if err != nil {
			yield(journal.Event{}, err)
			return
		}
		if j.err != nil {
			yield(journal.Event{}, j.err)
			return
		}
		// Positions at or above the last possible number have nothing
		// above them.
		live := make([]journal.Position, 0, len(from))
		for _, p := range from {
			if p.SequenceNr < journal.MaxSequenceNr {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			if err := ctx.Err(); err != nil {
				yield(journal.Event{}, err)
			}
			return
		}
		left := opts.Total
		for len(live) > 0 && left > 0 {
			part := live[:min(len(live), MaxReadStreamsBatch)]
			live = live[len(part):]
			var more bool
			if j.citus {
				more = j.readStreamsBatch(ctx, part, opts.PerStream, &left, yield)
			} else {
				more = j.readStreamsOnce(ctx, part, opts.PerStream, &left, yield)
			}
			if !more {
				return
			}
		}
	}
}

// readStreamsOnce reads part in one statement. It returns false when the
// caller must stop: yield returned false, or an error was yielded.
func (j *Journal) readStreamsOnce(ctx context.Context, part []journal.Position, perStream int, left *int, yield func(journal.Event, error) bool) bool {
	pids := make([]string, len(part))
	afters := make([]int64, len(part))
	for i, p := range part {
		pids[i], afters[i] = p.PersistenceID, int64(p.SequenceNr)
	}
	rows, err := j.db.Query(ctx, readStreamsSQL(j.ident.Sanitize()), pids, afters, int64(perStream), int64(*left))
	if err != nil {
		yield(journal.Event{}, j.interpretError(ctx, "read streams", err, nil))
		return false
	}
	defer rows.Close()
	return j.yieldRows(ctx, "read streams", rows, &rowScanner{withPID: true}, "", left, yield)
}

// readStreamsBatch reads part WithCitus: one Replay statement per stream,
// all in one batch.
func (j *Journal) readStreamsBatch(ctx context.Context, part []journal.Position, perStream int, left *int, yield func(journal.Event, error) bool) bool {
	b, ok := j.db.(batcher)
	batch := &pgx.Batch{}
	for _, p := range part {
		batch.Queue(j.sqlReplay, p.PersistenceID, int64(p.SequenceNr)+1, int64(math.MaxInt64), int64(perStream))
	}
	if !ok {
		// A handle without batches runs the statements one by one.
		for _, q := range batch.QueuedQueries {
			rows, err := j.db.Query(ctx, q.SQL, q.Arguments...)
			if err != nil {
				yield(journal.Event{}, j.interpretError(ctx, "read streams", err, nil))
				return false
			}
			more := j.yieldRows(ctx, "read streams", rows, &rowScanner{}, q.Arguments[0].(string), left, yield)
			rows.Close()
			if !more || *left == 0 {
				return more
			}
		}
		return true
	}
	br := b.SendBatch(ctx, batch)
	defer func() { _ = br.Close() }()
	var s rowScanner
	for _, p := range part {
		rows, err := br.Query()
		if err != nil {
			yield(journal.Event{}, j.interpretError(ctx, "read streams", err, nil))
			return false
		}
		s.dest = nil // the row layout is the same, the stream is not
		more := j.yieldRows(ctx, "read streams", rows, &s, p.PersistenceID, left, yield)
		rows.Close()
		if !more || *left == 0 {
			return more
		}
	}
	if err := br.Close(); err != nil {
		yield(journal.Event{}, j.interpretError(ctx, "read streams", err, nil))
		return false
	}
	return true
}

// yieldRows yields the events of rows (of stream pid, or of the stream
// each row names when s.withPID) until rows end or *left reaches 0. It
// returns false when the caller must stop: yield returned false, or an
// error was yielded.
func (j *Journal) yieldRows(ctx context.Context, op string, rows pgx.Rows, s *rowScanner, pid string, left *int, yield func(journal.Event, error) bool) bool {
	// pgx reads rows ahead into its buffer and does not look at ctx while
	// serving them: check it before every row.
	done := ctx.Done()
	for *left > 0 && rows.Next() {
		select {
		case <-done:
			rows.Close()
			yield(journal.Event{}, j.interpretError(ctx, op, ctx.Err(), nil))
			return false
		default:
		}
		ev, err := s.scan(rows, pid)
		if err != nil {
			rows.Close()
			yield(journal.Event{}, j.interpretError(ctx, op, err, nil))
			return false
		}
		*left--
		if !yield(ev, nil) {
			return false
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		yield(journal.Event{}, j.interpretError(ctx, op, err, nil))
		return false
	}
	return true
}
