package pgjournal

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
)

// MaxHighestBatch is the most persistence ids one statement of
// HighestSequenceNrs (and of HighestSequenceNrsBefore) reads: a call with
// more distinct ids runs one
// statement (one round trip) per MaxHighestBatch of them, so that no
// statement runs for long or sends an unbounded array.
const MaxHighestBatch = 10_000

var (
	_ journal.StreamLister  = (*Journal)(nil)
	_ journal.HighestReader = (*Journal)(nil)
)

// listSQL is the loose index scan of PersistenceIDs over table t (already
// quoted). PostgreSQL has no skip scan for DISTINCT on the leading column
// of an index (before version 18, and not for this shape after it), so a
// recursive query emulates one: each step probes the primary key for the
// first persistence_id above the previous one, one index descent per
// distinct id, never a row of the streams in between. A recursive CTE is
// evaluated only as far as the outer query reads it, so the LIMIT stops the
// probing after the page.
//
// "persistence_id > x" compares with the column's own collation (a
// parameter has the default collation, which yields to the column's), the
// one its index is sorted by; nothing here assumes byte order.
//
// The parameters are $1 After, then $2 the excluded prefix when exclude,
// and the limit last. With exclude, ids starting with $2 are filtered out after the probe: each
// excluded stream still costs one index descent, which is cheap for the
// offset store's streams (one per outbox).
func listSQL(t string, exclude bool) string {
	filter, limit := ``, `$2`
	if exclude {
		filter, limit = ` AND NOT starts_with(pid, $2::text)`, `$3`
	}
	return `WITH RECURSIVE ids(pid) AS (
    (SELECT persistence_id FROM ` + t + ` WHERE persistence_id > $1::text ORDER BY persistence_id LIMIT 1)
  UNION ALL
    SELECT (SELECT persistence_id FROM ` + t + ` WHERE persistence_id > ids.pid ORDER BY persistence_id LIMIT 1)
      FROM ids
     WHERE ids.pid IS NOT NULL
)
SELECT pid FROM ids WHERE pid IS NOT NULL` + filter + ` LIMIT ` + limit + `::bigint`
}

// listDistinctSQL is PersistenceIDs on a Citus table (WithCitus), where a
// recursive query over a distributed table cannot run: DISTINCT with ORDER
// BY and LIMIT, which Citus pushes down to every shard and merges. Each
// shard reads its index from After on, the rows of the page's streams and
// no more (no full scan, but every row of those streams, not one probe per
// stream). Same parameters as listSQL.
func listDistinctSQL(t string, exclude bool) string {
	filter, limit := ``, `$2`
	if exclude {
		filter, limit = ` AND NOT starts_with(persistence_id, $2::text)`, `$3`
	}
	return `SELECT DISTINCT persistence_id FROM ` + t + `
 WHERE persistence_id > $1::text` + filter + `
 ORDER BY persistence_id LIMIT ` + limit + `::bigint`
}

// highestGroupSQL is HighestSequenceNrs on a Citus table (WithCitus),
// where a LATERAL join over the array cannot be pushed down: one grouped
// read of the ids, which Citus sends to the shards that hold them. Ids
// without a row do not come back (they are 0).
func highestGroupSQL(t string) string {
	return `SELECT persistence_id, max(sequence_nr) FROM ` + t + `
 WHERE persistence_id = ANY($1::text[])
 GROUP BY persistence_id`
}

// highestSQL reads the highest sequence number of each id of the array $1
// (distinct ids): one backward probe of the primary key per id.
func highestSQL(t string) string {
	return `SELECT p.pid, coalesce(h.nr, 0)
  FROM unnest($1::text[]) AS p(pid)
  CROSS JOIN LATERAL (SELECT max(sequence_nr) AS nr FROM ` + t + ` WHERE persistence_id = p.pid) AS h`
}

// PersistenceIDs implements journal.StreamLister with one statement: a
// loose index scan over the primary key (see listSQL), in the collation
// order of the persistence_id column. Its cost is one index descent per id
// returned or excluded, whatever the length of the streams. With WithCitus
// it is a DISTINCT pushed down to the shards (see listDistinctSQL).
func (j *Journal) PersistenceIDs(ctx context.Context, opts journal.ListOptions) ([]string, error) {
	opts, err := journal.ValidateListOptions(opts)
	if err != nil {
		return nil, err
	}
	if j.err != nil {
		return nil, j.err
	}
	if opts.Prefix != "" {
		return j.prefixedIDs(ctx, opts)
	}
	sql := listSQL(j.ident.Sanitize(), opts.ExcludePrefix != "")
	if j.citus {
		sql = listDistinctSQL(j.ident.Sanitize(), opts.ExcludePrefix != "")
	}
	args := []any{opts.After, int64(opts.Limit)}
	if opts.ExcludePrefix != "" {
		args = []any{opts.After, opts.ExcludePrefix, int64(opts.Limit)}
	}
	return j.queryIDs(ctx, sql, opts.Limit, args...)
}

// queryIDs runs sql, a listing of persistence ids of at most limit rows,
// and collects them.
func (j *Journal) queryIDs(ctx context.Context, sql string, limit int, args ...any) ([]string, error) {
	rows, err := j.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, j.interpretError(ctx, "list persistence ids", err, nil)
	}
	ids := make([]string, 0, min(limit, 1024))
	var pid string
	_, err = pgx.ForEachRow(rows, []any{&pid}, func() error {
		ids = append(ids, pid)
		return nil
	})
	if err != nil {
		return nil, j.interpretError(ctx, "list persistence ids", err, nil)
	}
	return ids, nil
}

// HighestSequenceNrs implements journal.HighestReader: one statement per
// MaxHighestBatch distinct ids, each id one backward probe of the primary
// key (unnest of the ids, a LATERAL max per id).
func (j *Journal) HighestSequenceNrs(ctx context.Context, persistenceIDs []string) (map[string]uint64, error) {
	for _, pid := range persistenceIDs {
		if err := journal.ValidatePersistenceID(pid); err != nil {
			return nil, err
		}
	}
	if j.err != nil {
		return nil, j.err
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
	sql := highestSQL(j.ident.Sanitize())
	if j.citus {
		sql = highestGroupSQL(j.ident.Sanitize())
	}
	for len(distinct) > 0 {
		batch := distinct[:min(len(distinct), MaxHighestBatch)]
		distinct = distinct[len(batch):]
		rows, err := j.db.Query(ctx, sql, batch)
		if err != nil {
			return nil, j.interpretError(ctx, "highest sequence nrs", err, nil)
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
			return nil, j.interpretError(ctx, "highest sequence nrs", err, nil)
		}
	}
	return out, nil
}
