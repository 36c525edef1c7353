package pgjournal

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
)

// MaxLagBatch is the most positions one statement of StreamLags reads: a
// call with more runs one statement per MaxLagBatch of them, all sent in
// one round trip where the DBTX can pipeline (a pool, a connection, a
// transaction), so that no statement sends an unbounded array.
const MaxLagBatch = 10_000

var _ journal.LagReader = (*Journal)(nil)

// aheadOffset stands, in a statement, for an offset above math.MaxInt64,
// which no bigint holds: such a position is ahead of any stream, and -1
// makes the statement report the stream's highest number.
const aheadOffset = -1

// lagSQL is StreamLags over table t: for each position of the arrays $1
// (persistence ids) and $2 (offsets), numbered by ordinality, one backward
// probe of the primary key for the highest number and, only where it is
// above the offset, one forward probe for the first live row above the
// offset (a one-time filter gates the probe). Positions at their stream's
// head come back as no row.
func lagSQL(t string) string {
	return `SELECT p.i, h.nr, f.written_at
  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS p(pid, off, i)
 CROSS JOIN LATERAL (SELECT coalesce(max(sequence_nr), 0) AS nr FROM ` + t + ` WHERE persistence_id = p.pid) AS h
  LEFT JOIN LATERAL (
       SELECT written_at FROM ` + t + `
        WHERE h.nr > p.off AND persistence_id = p.pid AND sequence_nr > p.off AND NOT deleted
        ORDER BY sequence_nr
        LIMIT 1) AS f ON true
 WHERE h.nr <> p.off`
}

// lagGroupSQL is StreamLags on a Citus table (WithCitus), where a LATERAL
// join over the arrays cannot be pushed down: one grouped read of the
// streams named by $1, which Citus sends to the shards that hold them,
// each group finding its offset in the JSON object $2 (persistence id →
// offset). It reads every row of those streams, not two probes per
// stream, and returns one row per stream that has rows, at its position
// or not: a stream missing from the result has none (its highest number
// is 0), which a HAVING that left out the streams at their position would
// make ambiguous.
func lagGroupSQL(t string) string {
	return `SELECT persistence_id, max(sequence_nr),
       (array_agg(written_at ORDER BY sequence_nr)
          FILTER (WHERE NOT deleted AND sequence_nr > ($2::jsonb ->> persistence_id)::bigint))[1]
  FROM ` + t + `
 WHERE persistence_id = ANY($1::text[])
 GROUP BY persistence_id`
}

// StreamLags implements journal.LagReader. On PostgreSQL each position
// costs one index probe for its stream's highest number and, when the
// stream is ahead of it, a second for the first event above it; only the
// positions whose stream moved come back. MaxLagBatch positions go in one
// statement, every statement of a call in one round trip (pipelined) when
// the DBTX can send a batch. WithCitus it is a grouped read pushed down to
// the shards (see lagGroupSQL).
func (j *Journal) StreamLags(ctx context.Context, positions []journal.Position) ([]journal.StreamLag, error) {
	if err := journal.ValidatePositions(positions); err != nil {
		return nil, err
	}
	if j.err != nil {
		return nil, j.err
	}
	if len(positions) == 0 {
		return nil, ctx.Err()
	}
	var queries []lagQuery
	for start := 0; start < len(positions); start += MaxLagBatch {
		part := positions[start:min(len(positions), start+MaxLagBatch)]
		queries = append(queries, j.lagQuery(part))
	}
	var out []journal.StreamLag
	collect := func(q lagQuery, rows pgx.Rows) error {
		var err error
		out, err = q.collect(rows, out)
		return err
	}
	if b, ok := j.db.(batcher); ok && len(queries) > 1 {
		batch := &pgx.Batch{}
		for _, q := range queries {
			batch.Queue(q.sql, q.args...)
		}
		br := b.SendBatch(ctx, batch)
		for _, q := range queries {
			rows, err := br.Query()
			if err == nil {
				err = collect(q, rows)
			}
			if err != nil {
				_ = br.Close() // the error that matters is err
				return nil, j.interpretError(ctx, "stream lags", err, nil)
			}
		}
		if err := br.Close(); err != nil {
			return nil, j.interpretError(ctx, "stream lags", err, nil)
		}
		return out, nil
	}
	for _, q := range queries {
		rows, err := j.db.Query(ctx, q.sql, q.args...)
		if err == nil {
			err = collect(q, rows)
		}
		if err != nil {
			return nil, j.interpretError(ctx, "stream lags", err, nil)
		}
	}
	return out, nil
}

// lagQuery is one statement of StreamLags and the positions it reads.
type lagQuery struct {
	sql       string
	args      []any
	positions []journal.Position
	citus     bool
}

func (j *Journal) lagQuery(positions []journal.Position) lagQuery {
	q := lagQuery{positions: positions, citus: j.citus}
	if j.citus {
		pids := make([]string, len(positions))
		var obj strings.Builder
		obj.WriteByte('{')
		for i, p := range positions {
			pids[i] = p.PersistenceID
			if i > 0 {
				obj.WriteByte(',')
			}
			key, _ := json.Marshal(p.PersistenceID) // a valid UTF-8 string always marshals
			obj.Write(key)
			obj.WriteByte(':')
			obj.WriteString(strconv.FormatInt(statementOffset(p.SequenceNr), 10))
		}
		obj.WriteByte('}')
		q.sql, q.args = lagGroupSQL(j.ident.Sanitize()), []any{pids, obj.String()} // pgx sends a string as the JSON text itself
		return q
	}
	pids := make([]string, len(positions))
	offs := make([]int64, len(positions))
	for i, p := range positions {
		pids[i], offs[i] = p.PersistenceID, statementOffset(p.SequenceNr)
	}
	q.sql, q.args = lagSQL(j.ident.Sanitize()), []any{pids, offs}
	return q
}

// collect appends the StreamLags of rows to out.
func (q lagQuery) collect(rows pgx.Rows, out []journal.StreamLag) ([]journal.StreamLag, error) {
	if q.citus {
		return q.collectGrouped(rows, out)
	}
	var (
		i  int64
		nr int64
		at *time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&i, &nr, &at}, func() error {
		out = append(out, lagOf(q.positions[i-1], nr, at))
		return nil
	})
	return out, err
}

// collectGrouped is collect for lagGroupSQL, whose rows are by persistence
// id and leave out streams without a row.
func (q lagQuery) collectGrouped(rows pgx.Rows, out []journal.StreamLag) ([]journal.StreamLag, error) {
	found := make(map[string]int, len(q.positions))
	var (
		pid string
		nr  int64
		at  *time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&pid, &nr, &at}, func() error {
		found[pid] = len(out)
		out = append(out, journal.StreamLag{PersistenceID: pid, Highest: uint64(nr)})
		if at != nil {
			out[len(out)-1].NextWrittenAt = *at
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	start := len(out) - len(found)
	for _, p := range q.positions {
		if k, ok := found[p.PersistenceID]; ok {
			at := &out[k].NextWrittenAt
			if out[k].NextWrittenAt.IsZero() {
				at = nil
			}
			out[k] = lagOf(p, int64(out[k].Highest), at)
		} else if p.SequenceNr != 0 { // no row: highest 0, ahead of the position
			out = append(out, journal.StreamLag{PersistenceID: p.PersistenceID, Offset: p.SequenceNr})
		}
	}
	kept := out[:start]
	for _, l := range out[start:] {
		if l.Highest != l.Offset {
			kept = append(kept, l)
		}
	}
	return kept, nil
}

// lagOf is the StreamLag of position p whose stream's highest number is nr
// and whose first live event above the statement's offset was written at
// at (nil for none).
func lagOf(p journal.Position, nr int64, at *time.Time) journal.StreamLag {
	l := journal.StreamLag{PersistenceID: p.PersistenceID, Offset: p.SequenceNr, Highest: uint64(nr)}
	if at != nil && l.Highest > l.Offset { // an ahead offset reads rows from 0
		l.NextWrittenAt = *at
	}
	return l
}

// statementOffset is the bigint a statement compares with for offset.
func statementOffset(offset uint64) int64 {
	if offset > math.MaxInt64 {
		return aheadOffset
	}
	return int64(offset)
}
