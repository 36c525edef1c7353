package pgjournal

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
)

var _ journal.BeforeReader = (*Journal)(nil)

// beforeSQL reads, for each id of the array $1 (distinct ids), the highest
// sequence number among its rows written before $2: one backward walk of
// the primary key per id, from the stream's newest row down to the first
// one written before $2. A call costs one index descent per id plus the
// rows written at or after $2, the events a rewind to $2 publishes again,
// never the rows of the stream below them. Ids without such a row do not
// come back (they are 0).
func beforeSQL(t string) string {
	return `SELECT p.pid, b.sequence_nr
  FROM unnest($1::text[]) AS p(pid)
  CROSS JOIN LATERAL (
       SELECT sequence_nr FROM ` + t + `
        WHERE persistence_id = p.pid AND written_at < $2::timestamptz
        ORDER BY sequence_nr DESC
        LIMIT 1) AS b`
}

// beforeGroupSQL is HighestSequenceNrsBefore on a Citus table
// (WithCitus), where a LATERAL join over the array cannot be pushed down:
// one grouped read of the ids, which Citus sends to the shards that hold
// them. Each shard reads every row of the named streams (the filter on
// written_at is no index condition), so it costs the streams' length
// rather than the rows after $2.
func beforeGroupSQL(t string) string {
	return `SELECT persistence_id, max(sequence_nr) FROM ` + t + `
 WHERE persistence_id = ANY($1::text[]) AND written_at < $2::timestamptz
 GROUP BY persistence_id`
}

// HighestSequenceNrsBefore implements journal.BeforeReader: one statement
// per MaxHighestBatch distinct ids (see beforeSQL; with WithCitus,
// beforeGroupSQL).
//
// written_at holds microseconds: a time between two microseconds is
// rounded up to the next one, so that written_at < before compares as it
// would with the exact time (pgx would truncate it, counting an event
// written in the very microsecond of before).
func (j *Journal) HighestSequenceNrsBefore(ctx context.Context, persistenceIDs []string, before time.Time) (map[string]uint64, error) {
	for _, pid := range persistenceIDs {
		if err := journal.ValidatePersistenceID(pid); err != nil {
			return nil, err
		}
	}
	if err := journal.ValidateTime(before); err != nil {
		return nil, err
	}
	if j.err != nil {
		return nil, j.err
	}
	if r := before.Truncate(time.Microsecond); !r.Equal(before) {
		before = r.Add(time.Microsecond)
	}
	out := make(map[string]uint64, len(persistenceIDs))
	distinct := make([]string, 0, len(persistenceIDs))
	for _, pid := range persistenceIDs {
		if _, seen := out[pid]; !seen {
			out[pid] = 0
			distinct = append(distinct, pid)
		}
	}
	if len(distinct) == 0 {
		return out, ctx.Err()
	}
	sql := beforeSQL(j.ident.Sanitize())
	if j.citus {
		sql = beforeGroupSQL(j.ident.Sanitize())
	}
	for len(distinct) > 0 {
		batch := distinct[:min(len(distinct), MaxHighestBatch)]
		distinct = distinct[len(batch):]
		rows, err := j.db.Query(ctx, sql, batch, before)
		if err != nil {
			return nil, j.interpretError(ctx, "highest sequence nrs before", err, nil)
		}
		var (
			pid string
			nr  int64
		)
		_, err = pgx.ForEachRow(rows, []any{&pid, &nr}, func() error {
			out[pid] = uint64(nr)
			return nil
		})
		if err != nil {
			return nil, j.interpretError(ctx, "highest sequence nrs before", err, nil)
		}
	}
	return out, nil
}
