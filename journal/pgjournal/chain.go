package pgjournal

import (
	"context"
	"time"

	"github.com/outboxkit/offsetstore/journal"
)

var _ journal.ChainReader = (*Journal)(nil)

// chainSQL reads a stream's chain over table t (already quoted) in one
// statement, so one snapshot: the highest sequence number, deleted rows
// included, on every row, and the live rows from the newest one whose
// manifest is $2 on (all live rows when none has it); one row of NULLs
// beside the highest when there is no live row to return. The base is
// found by a backward scan of the primary key that stops at the first row
// with the base manifest, its rows by a forward range scan: the cost
// follows the chain, not the stream's history. Every
// condition names one persistence_id, so Citus routes it to one shard.
func chainSQL(t string) string {
	return `SELECT h.nr, e.sequence_nr, e.payload, e.manifest, e.writer_uuid, e.tags, e.written_at
  FROM (SELECT max(sequence_nr) AS nr FROM ` + t + ` WHERE persistence_id = $1) AS h
  LEFT JOIN LATERAL (
       SELECT sequence_nr, payload, manifest, writer_uuid, tags, written_at FROM ` + t + `
        WHERE persistence_id = $1 AND NOT deleted
          AND sequence_nr >= coalesce((SELECT sequence_nr FROM ` + t + `
                                        WHERE persistence_id = $1 AND manifest = $2 AND NOT deleted
                                        ORDER BY sequence_nr DESC LIMIT 1), 0)
        ORDER BY sequence_nr) AS e ON true
 ORDER BY e.sequence_nr`
}

// ReadChain implements journal.ChainReader in one statement (see
// chainSQL).
func (j *Journal) ReadChain(ctx context.Context, persistenceID, base string) (journal.Chain, error) {
	if err := j.check(persistenceID); err != nil {
		return journal.Chain{}, err
	}
	rows, err := j.db.Query(ctx, j.sqlChain, persistenceID, base)
	if err != nil {
		return journal.Chain{}, j.interpretError(ctx, "read chain", err, nil)
	}
	defer rows.Close()
	var (
		c       journal.Chain
		highest *int64
		seq     *int64
		payload []byte
		man     *string
		writer  *string
		tags    []string
		at      *time.Time
	)
	for rows.Next() {
		payload, tags = nil, nil
		if err := rows.Scan(&highest, &seq, &payload, &man, &writer, &tags, &at); err != nil {
			return journal.Chain{}, j.interpretError(ctx, "read chain", err, nil)
		}
		if highest != nil {
			c.Highest = uint64(*highest)
		}
		if seq == nil {
			continue
		}
		if len(tags) == 0 {
			tags = nil // as the in-memory journal: no tags is nil
		}
		c.Events = append(c.Events, journal.Event{
			PersistenceID: persistenceID,
			SequenceNr:    uint64(*seq),
			Payload:       nonNil(payload),
			Manifest:      *man,
			WriterUUID:    *writer,
			Tags:          tags,
			WrittenAt:     *at,
		})
	}
	if err := rows.Err(); err != nil {
		return journal.Chain{}, j.interpretError(ctx, "read chain", err, nil)
	}
	return c, nil
}
