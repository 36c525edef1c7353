package pgjournal_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// Every database benchmark runs beside a baseline doing the same work in
// the same run, and prints the ratio of the two as
//
//	ratio name=<name> value=<x.xx> goal=<goal>
//
// so that a reader does not divide by hand. Absolute figures depend on the
// machine; the ratios are what is judged. Run with
//
//	go test -run '^$' -bench . ./journal/pgjournal
//
// (under a minute). The two sides of a comparison alternate within one
// benchmark loop, operation by operation, rather than running one after
// the other: on a shared machine, load that comes and goes then slows both
// sides alike instead of skewing the ratio.

// side is one of the two operations a comparison alternates.
type side = benchratio.Side

// compare runs a and c alternately (see benchratio.Alternate), reps times
// per iteration, and returns the ns/op of each; events per operation give
// the events/s metrics.
func compare(b *testing.B, events, reps int, a, c side) (nsA, nsC float64) {
	b.Helper()
	return benchratio.Alternate(b, reps, float64(events), "events", a, c)
}

var benchColumns = []string{"persistence_id", "sequence_nr", "payload", "manifest", "writer_uuid", "tags"}

// benchEvents returns n events of pid with size-byte payloads.
func benchEvents(pid string, n, size int) []journal.Event {
	events := make([]journal.Event, n)
	for i := range events {
		events[i] = journal.Event{
			PersistenceID: pid,
			SequenceNr:    uint64(i + 1),
			Payload:       bytes.Repeat([]byte{byte(i)}, size),
			Manifest:      "bench-manifest",
			WriterUUID:    "5f0c6c2e-8d6a-4f7e-9a41-2b1e0d3c4b5a",
			Tags:          []string{"bench"},
		}
	}
	return events
}

// appendSide appends batches of n events with size-byte payloads to a
// fresh database, each batch numbered after the previous one, with write.
func appendSide(b *testing.B, name string, n, size int, write func(ctx context.Context, db *testdb.DB, events []journal.Event) error) side {
	db := testdb.New(b)
	events := benchEvents("bench", n, size)
	batch := 0
	return side{Name: name, Op: func(ctx context.Context) error {
		for i := range events {
			events[i].SequenceNr = uint64(batch*n + i + 1)
		}
		batch++
		return write(ctx, db, events)
	}}
}

// appendWith appends with a pgjournal.Journal on the database, its
// statement forced by force if not nil.
func appendWith(force func(*pgjournal.Journal)) func(ctx context.Context, db *testdb.DB, events []journal.Event) error {
	var j *pgjournal.Journal
	return func(ctx context.Context, db *testdb.DB, events []journal.Event) error {
		if j == nil {
			j = pgjournal.New(db.Pool)
			if force != nil {
				force(j)
			}
		}
		return j.Append(ctx, events...)
	}
}

// rawCopy is what a pgx user writes to COPY the events in.
func rawCopy(ctx context.Context, db *testdb.DB, events []journal.Event) error {
	rows := make([][]any, len(events))
	for i, ev := range events {
		rows[i] = []any{ev.PersistenceID, int64(ev.SequenceNr), ev.Payload, ev.Manifest, ev.WriterUUID, ev.Tags}
	}
	_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"journal"}, benchColumns, pgx.CopyFromRows(rows))
	return err
}

// BenchmarkAppend1000 compares Append of 1 000 events in one call with a
// raw pgx CopyFrom of the same rows, each on its own database.
func BenchmarkAppend1000(b *testing.B) {
	const n = 1000
	j, raw := compare(b, n, 1,
		appendSide(b, "pgjournal", n, 100, appendWith(nil)),
		appendSide(b, "raw-copy", n, 100, rawCopy))
	benchratio.Print("append_1000_vs_raw_copy", j, raw, benchratio.Goal{Max: 1.2})
}

// BenchmarkAppendInsertVsCopy runs Append through each of its statements
// on the same batches: the figures behind its choice (see
// defaultCopyThreshold in pgjournal.go). The ratio is COPY's time over
// INSERT's: above 1 INSERT is faster, and the goal says which one Append
// picks for that batch.
func BenchmarkAppendInsertVsCopy(b *testing.B) {
	cases := []struct{ n, size int }{
		{1, 100}, {10, 100}, {100, 100}, {1000, 100}, // by count
		{1, 25 << 10}, {10, 16 << 10}, // by bytes
	}
	for _, c := range cases {
		name := fmt.Sprintf("n=%d/size=%d", c.n, c.size)
		b.Run(name, func(b *testing.B) {
			insert, cp := compare(b, c.n, 1,
				appendSide(b, "insert", c.n, c.size, appendWith(pgjournal.ForceInsert)),
				appendSide(b, "copy", c.n, c.size, appendWith(pgjournal.ForceCopy)))
			// Above 1 INSERT is faster; the goal is the side Append picks.
			goal := benchratio.Goal{Min: 1}
			if pgjournal.UseCopy(pgjournal.New(nil), benchEvents("x", c.n, c.size)) {
				goal = benchratio.Goal{Max: 1}
			}
			benchratio.Print("append_copy_over_insert/"+name, cp, insert, goal)
		})
	}
}

// loadStream writes n events of pid (100-byte payloads) in one statement.
func loadStream(b *testing.B, pool *pgxpool.Pool, pid string, n int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	_, err := pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
		SELECT $1, g, convert_to(rpad(g::text, 100, '#'), 'UTF8'), 'bench-manifest', '5f0c6c2e-8d6a-4f7e-9a41-2b1e0d3c4b5a', '{bench}'
		  FROM generate_series(1, $2::bigint) AS g`, pid, n)
	if err != nil {
		b.Fatalf("load %d events: %v", n, err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE journal`); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	b.Logf("loaded %d events of %q in %v", n, pid, time.Since(start).Round(time.Millisecond))
}

// BenchmarkReplay100k compares Replay of a 100 000-event stream with a raw
// streaming SELECT of the same rows into Events, on one database.
func BenchmarkReplay100k(b *testing.B) {
	const n = 100_000
	db := testdb.New(b)
	loadStream(b, db.Pool, "replay", n)
	j := pgjournal.New(db.Pool)

	var sink journal.Event
	count := func(got int, err error) error {
		if err == nil && got != n {
			err = fmt.Errorf("replayed %d events, want %d", got, n)
		}
		return err
	}
	pg := side{Name: "pgjournal", Op: func(ctx context.Context) error {
		got := 0
		for ev, err := range j.Replay(ctx, "replay", 1, math.MaxUint64, math.MaxUint64) {
			if err != nil {
				return err
			}
			sink = ev
			got++
		}
		return count(got, nil)
	}}
	raw := side{Name: "raw-select", Op: func(ctx context.Context) error {
		rows, err := db.Pool.Query(ctx, `SELECT sequence_nr, payload, manifest, writer_uuid, tags, written_at FROM journal
			WHERE persistence_id = $1 AND sequence_nr BETWEEN $2 AND $3 AND NOT deleted ORDER BY sequence_nr`,
			"replay", 1, int64(math.MaxInt64))
		if err != nil {
			return err
		}
		defer rows.Close()
		got := 0
		for rows.Next() {
			ev := journal.Event{PersistenceID: "replay"}
			var seq int64
			if err := rows.Scan(&seq, &ev.Payload, &ev.Manifest, &ev.WriterUUID, &ev.Tags, &ev.WrittenAt); err != nil {
				return err
			}
			ev.SequenceNr = uint64(seq)
			sink = ev
			got++
		}
		return count(got, rows.Err())
	}}
	nsPG, nsRaw := compare(b, n, 5, pg, raw)
	for _, s := range []side{pg, raw} {
		allocs := testing.AllocsPerRun(2, func() {
			if err := s.Op(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
		b.ReportMetric(allocs/n, s.Name+"-allocs/event")
	}
	_ = sink
	// rows/s of Replay over rows/s of the raw SELECT.
	benchratio.Print("replay_100k_rows_per_s_vs_raw", nsRaw, nsPG, benchratio.Goal{Min: 0.85})
}

// BenchmarkLastHistory compares Last (and HighestSequenceNr) on a stream
// of 1 event with a stream of 1 000 000 events in the same table: both
// must be one index probe, whatever the history.
func BenchmarkLastHistory(b *testing.B) {
	db := testdb.New(b)
	loadStream(b, db.Pool, "long", 1_000_000)
	loadStream(b, db.Pool, "short", 1)
	j := pgjournal.New(db.Pool)

	last := func(name, pid string) side {
		return side{Name: name, Op: func(ctx context.Context) error {
			if _, ok, err := j.Last(ctx, pid); err != nil || !ok {
				return fmt.Errorf("Last(%q) = %v, %v", pid, ok, err)
			}
			return nil
		}}
	}
	highest := func(name, pid string) side {
		return side{Name: name, Op: func(ctx context.Context) error {
			if h, err := j.HighestSequenceNr(ctx, pid); err != nil || h == 0 {
				return fmt.Errorf("HighestSequenceNr(%q) = %d, %v", pid, h, err)
			}
			return nil
		}}
	}
	b.Run("last", func(b *testing.B) {
		short, long := compare(b, 0, 1, last("history=1", "short"), last("history=1000000", "long"))
		benchratio.Print("last_1m_over_1_history", long, short, benchratio.Goal{Max: 1.2})
	})
	b.Run("highest", func(b *testing.B) {
		short, long := compare(b, 0, 1, highest("history=1", "short"), highest("history=1000000", "long"))
		benchratio.Print("highest_1m_over_1_history", long, short, benchratio.Goal{Max: 1.2})
	})
}

// BenchmarkAppendNextVsInsert is the journal's share of a Save's cost:
// AppendNext of a snapshot (the stream's lock and the conditional insert,
// one round trip) vs a plain single-row INSERT of the same bytes into the
// same table. The rest of a Save's ratio over a raw INSERT is the store's
// CPU (store.BenchmarkSaveCPU).
func BenchmarkAppendNextVsInsert(b *testing.B) {
	for _, keys := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			db := testdb.New(b)
			j := pgjournal.New(db.Pool)
			offsets := make(map[string]uint64, keys)
			for i := range keys {
				offsets[fmt.Sprintf("order-%07d", i)] = uint64(i + 1)
			}
			payload, err := codec.Encode(offsets)
			if err != nil {
				b.Fatal(err)
			}
			ev := journal.Event{PersistenceID: "next", Payload: payload, Manifest: codec.Manifest, WriterUUID: "bench-writer", Tags: []string{"outbox-offsets"}}
			var rawSeq int64
			next := side{Name: "append-next", Op: func(ctx context.Context) error {
				ev.SequenceNr++
				return j.AppendNext(ctx, ev)
			}}
			raw := side{Name: "raw-insert", Op: func(ctx context.Context) error {
				rawSeq++
				_, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
					VALUES ($1, $2, $3, $4, $5, $6)`, "raw", rawSeq, payload, codec.Manifest, "bench-writer", []string{"outbox-offsets"})
				return err
			}}
			ns, r := compare(b, 1, 1, next, raw)
			benchratio.Print(fmt.Sprintf("append_next_vs_raw_insert/keys=%d", keys), ns, r, benchratio.Goal{})
		})
	}
}
