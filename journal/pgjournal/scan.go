package pgjournal

import (
	"context"
	"iter"

	"github.com/outboxkit/offsetstore/journal"
)

var _ journal.Scanner = (*Journal)(nil)

// scanSQL reads a page of the journal in primary-key order after the key
// ($1, $2): one range scan of the primary key, the row comparison its
// start. With exclude, ids starting with $3 are filtered out as they come
// (the offset store's streams are a few rows each). The limit is last.
func scanSQL(t string, exclude bool) string {
	filter, limit := ``, `$3`
	if exclude {
		filter, limit = ` AND NOT starts_with(persistence_id, $3::text)`, `$4`
	}
	return `SELECT sequence_nr, payload, manifest, writer_uuid, tags, written_at, persistence_id FROM ` + t + `
 WHERE (persistence_id, sequence_nr) > ($1::text, $2::bigint) AND NOT deleted` + filter + `
 ORDER BY persistence_id, sequence_nr
 LIMIT ` + limit + `::bigint`
}

// Scan implements journal.Scanner with one statement per page: a range
// scan of the primary key from opts.After, streamed, in the collation
// order of the persistence_id column.
//
// With WithCitus the same statement runs on every shard, each sending up
// to opts.Limit rows that the coordinator merges: correct, but every page
// reads and sends about as many rows per shard as the page holds.
func (j *Journal) Scan(ctx context.Context, opts journal.ScanOptions) iter.Seq2[journal.Event, error] {
	return func(yield func(journal.Event, error) bool) {
		opts, err := journal.ValidateScanOptions(opts)
		if err != nil {
			yield(journal.Event{}, err)
			return
		}
		if j.err != nil {
			yield(journal.Event{}, j.err)
			return
		}
		after := int64(journal.ClampSequenceNr(opts.After.SequenceNr))
		args := []any{opts.After.PersistenceID, after, int64(opts.Limit)}
		if opts.ExcludePrefix != "" {
			args = []any{opts.After.PersistenceID, after, opts.ExcludePrefix, int64(opts.Limit)}
		}
		rows, err := j.db.Query(ctx, scanSQL(j.ident.Sanitize(), opts.ExcludePrefix != ""), args...)
		if err != nil {
			yield(journal.Event{}, j.interpretError(ctx, "scan", err, nil))
			return
		}
		defer rows.Close()
		left := opts.Limit
		j.yieldRows(ctx, "scan", rows, &rowScanner{withPID: true}, "", &left, yield)
	}
}
