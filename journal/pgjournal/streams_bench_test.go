package pgjournal_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// Stream discovery on 1 000 000 rows of 100-byte events (filled with
// generate_series, then VACUUM ANALYZE), beside the query a user writes
// without it: as 100 000 streams of 10 events (the case) and as
// 10 000 streams of 100 events. Run with
//
//	go test -run '^$' -bench 'PersistenceIDs|HighestSequenceNrs' ./journal/pgjournal
const (
	benchStreams   = 100_000
	benchPerStream = 10
	benchPayload   = 100
)

// BenchmarkPersistenceIDs lists every stream, in pages of the default
// limit and with the offsets' streams excluded, as a relay discovers its
// sources, against one raw SELECT DISTINCT of the table. The ratio printed
// is the speedup, raw time over ours (goal ≥ 5).
//
// The loose index scan costs one index descent per stream, SELECT
// DISTINCT one row read per event: the speedup grows with the length of
// the streams, and at 10 events per stream the descents cost more.
func BenchmarkPersistenceIDs(b *testing.B) {
	for _, shape := range []struct{ streams, perStream int }{{benchStreams, benchPerStream}, {benchStreams / 10, benchPerStream * 10}} {
		b.Run(fmt.Sprintf("streams=%d/events=%d", shape.streams, shape.perStream), func(b *testing.B) {
			benchmarkPersistenceIDs(b, shape.streams, shape.perStream)
		})
	}
}

func benchmarkPersistenceIDs(b *testing.B, streams, perStream int) {
	db := testdb.New(b)
	ctx := b.Context()
	fillStreams(b, ctx, db.Pool, "journal", streams, perStream, benchPayload)
	j := pgjournal.New(db.Pool)
	ours := side{Name: "pgjournal", Op: func(ctx context.Context) error {
		n := 0
		for _, err := range journal.AllPersistenceIDs(ctx, j, journal.ListOptions{ExcludePrefix: "outbox::"}) {
			if err != nil {
				return err
			}
			n++
		}
		if n != streams {
			return fmt.Errorf("listed %d streams, want %d", n, streams)
		}
		return nil
	}}
	raw := side{Name: "distinct", Op: func(ctx context.Context) error {
		rows, err := db.Pool.Query(ctx, `SELECT DISTINCT persistence_id FROM journal WHERE persistence_id NOT LIKE 'outbox::%'`)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(ids) != streams {
			return fmt.Errorf("distinct found %d streams, want %d", len(ids), streams)
		}
		return nil
	}}
	nsOurs, nsRaw := benchratio.Alternate(b, 1, float64(streams), "streams", ours, raw)
	benchratio.Print(fmt.Sprintf("list-%d-streams-of-%d-speedup-vs-distinct", streams, perStream), nsRaw, nsOurs, benchratio.Goal{Min: 5})
}

// BenchmarkHighestSequenceNrs reads the heads of 10 000 of the streams in
// one call, against the raw equivalent: one GROUP BY over
// persistence_id = ANY of the same array.
func BenchmarkHighestSequenceNrs(b *testing.B) {
	db := testdb.New(b)
	ctx := b.Context()
	fillStreams(b, ctx, db.Pool, "journal", benchStreams, benchPerStream, benchPayload)
	j := pgjournal.New(db.Pool)
	const n = 10_000
	pids := make([]string, n)
	for i := range pids {
		pids[i] = fmt.Sprintf("stream-%06d", 1+i*(benchStreams/n))
	}
	ours := side{Name: "pgjournal", Op: func(ctx context.Context) error {
		heads, err := j.HighestSequenceNrs(ctx, pids)
		if err != nil {
			return err
		}
		if len(heads) != n || heads[pids[0]] != benchPerStream {
			return fmt.Errorf("%d heads, first %d", len(heads), heads[pids[0]])
		}
		return nil
	}}
	raw := side{Name: "raw", Op: func(ctx context.Context) error {
		rows, err := db.Pool.Query(ctx, `SELECT persistence_id, max(sequence_nr) FROM journal WHERE persistence_id = ANY($1) GROUP BY persistence_id`, pids)
		if err != nil {
			return err
		}
		heads := make(map[string]uint64, n)
		var (
			pid string
			nr  int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&pid, &nr}, func() error {
			heads[pid] = uint64(nr)
			return nil
		}); err != nil {
			return err
		}
		if len(heads) != n {
			return fmt.Errorf("raw: %d heads", len(heads))
		}
		return nil
	}}
	nsOurs, nsRaw := benchratio.Alternate(b, 1, n, "streams", ours, raw)
	benchratio.Print("heads-10k-streams-vs-raw-group-by", nsOurs, nsRaw, benchratio.Goal{})
}
