package pgjournal_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/migrations"
)

// beforeFeed returns a database whose journal is at migration 000002:
// the schema before the feed's column and index, applied from the same
// files.
func beforeFeed(b *testing.B) *testdb.DB {
	b.Helper()
	db := testdb.NewEmpty(b)
	for _, name := range []string{"000001_create_journal.up.sql", "000002_payload_lz4.up.sql"} {
		sql, err := migrations.FS.ReadFile(name)
		if err != nil {
			b.Fatalf("read %s: %v", name, err)
		}
		if _, err := db.Pool.Exec(b.Context(), string(sql)); err != nil {
			b.Fatalf("apply %s: %v", name, err)
		}
	}
	return db
}

// feedAppendSide appends batches of n events (into one stream, or one
// event into each of n streams) with pgjournal.Append on db's journal.
func feedAppendSide(name string, db *testdb.DB, n int, spread bool) side {
	j := pgjournal.New(db.Pool)
	events := benchEvents("bench", n, 100)
	batch := 0
	return side{Name: name, Op: func(ctx context.Context) error {
		for i := range events {
			if spread {
				events[i].PersistenceID = fmt.Sprintf("stream-%06d", i)
				events[i].SequenceNr = uint64(batch + 1)
			} else {
				events[i].SequenceNr = uint64(batch*n + i + 1)
			}
		}
		batch++
		return j.Append(ctx, events...)
	}}
}

// BenchmarkAppendFeedColumn is Append of 1 000 events on the journal with
// migration 000003 (the xact_id column, filled by its default, and its
// index) against the same Append on the journal before it, each on a
// database of its own in the same server: the write cost of the feed.
//
// The goal is set on 1 000 events; one and ten events (the common
// appends of an event-sourced service, one command at a time) are
// reported beside them.
func BenchmarkAppendFeedColumn(b *testing.B) {
	for _, tc := range []struct {
		name   string
		n      int
		spread bool
		goal   benchratio.Goal
	}{
		{"1000_one_stream", 1000, false, benchratio.Goal{Max: 1.15}},
		{"1000_streams", 1000, true, benchratio.Goal{Max: 1.15}},
		{"10_one_stream", 10, false, benchratio.Goal{}},
		{"1_event", 1, false, benchratio.Goal{}},
	} {
		n := tc.n
		b.Run(tc.name, func(b *testing.B) {
			withDB, beforeDB := testdb.New(b), beforeFeed(b)
			with := feedAppendSide("with-xact-id", withDB, n, tc.spread)
			before := feedAppendSide("before-000003", beforeDB, n, tc.spread)
			nsWith, nsBefore := compare(b, n, 1, with, before)
			benchratio.Print("append_feed_column_"+tc.name+"_vs_before", nsWith, nsBefore, tc.goal)
			// WAL written per Append, which the machine's noise does not
			// move: the sides one after the other, nothing else writing.
			walWith, walBefore := walPerOp(b, withDB, with), walPerOp(b, beforeDB, before)
			b.ReportMetric(walWith, "with-xact-id-wal-B/op")
			b.ReportMetric(walBefore, "before-000003-wal-B/op")
			benchratio.Print("append_feed_column_"+tc.name+"_wal_vs_before", walWith, walBefore, benchratio.Goal{})
		})
	}
	// The floor of the one-stream case, in the same run: a raw pgx
	// CopyFrom of the same rows into each table, what the column and its
	// index cost any writer.
	b.Run("1000_one_stream_floor_raw_copy", func(b *testing.B) {
		withDB, beforeDB := testdb.New(b), beforeFeed(b)
		nsWith, nsBefore := compare(b, 1000, 1, rawCopySide("raw-copy-with-xact-id", withDB, 1000), rawCopySide("raw-copy-before-000003", beforeDB, 1000))
		benchratio.Print("append_feed_column_1000_one_stream_floor_raw_copy_vs_before", nsWith, nsBefore, benchratio.Goal{})
	})
}

// rawCopySide copies batches of n events into one stream of db's journal
// with a raw pgx CopyFrom (rawCopy), numbered on from batch to batch.
func rawCopySide(name string, db *testdb.DB, n int) side {
	events := benchEvents("raw", n, 100)
	batch := 0
	return side{Name: name, Op: func(ctx context.Context) error {
		for i := range events {
			events[i].SequenceNr = uint64(batch*n + i + 1)
		}
		batch++
		return rawCopy(ctx, db, events)
	}}
}

// BenchmarkReadFeedIdle is ReadFeed with nothing new on a journal of
// 1 000 000 rows in 100 000 streams: what a relay's pass costs when
// nothing moved, beside FeedStart (one snapshot, no table), its floor.
func BenchmarkReadFeedIdle(b *testing.B) {
	db := testdb.New(b)
	if _, err := db.Pool.Exec(b.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload)
		SELECT 'stream-' || lpad(i::text, 6, '0'), s, '\x00' FROM generate_series(1, 100000) i, generate_series(1, 10) s`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(b.Context(), `VACUUM ANALYZE journal`); err != nil {
		b.Fatal(err)
	}
	j := pgjournal.New(db.Pool)
	cursor, err := j.FeedStart(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	feed, start := compare(b, 0, 1,
		side{Name: "read-feed", Op: func(ctx context.Context) error {
			next, err := j.ReadFeed(ctx, cursor, journal.FeedOptions{ExcludePrefix: "outbox::"}, func(m journal.Moved) error {
				return fmt.Errorf("nothing moved, but %q was reported", m.PersistenceID)
			})
			cursor = next
			return err
		}},
		side{Name: "feed-start", Op: func(ctx context.Context) error {
			_, err := j.FeedStart(ctx)
			return err
		}})
	benchratio.Print("read_feed_idle_1m_rows_vs_snapshot", feed, start, benchratio.Goal{})
}

// walPerOp runs s's operation 20 times on db and returns the WAL bytes
// each wrote, on average.
func walPerOp(b *testing.B, db *testdb.DB, s side) float64 {
	b.Helper()
	ctx := b.Context()
	const ops = 20
	var start, end int64
	q := `SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn`
	if err := db.Pool.QueryRow(ctx, q).Scan(&start); err != nil {
		b.Fatal(err)
	}
	for range ops {
		if err := s.Op(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Pool.QueryRow(ctx, q).Scan(&end); err != nil {
		b.Fatal(err)
	}
	return float64(end-start) / ops
}

// BenchmarkScanPages is a whole journal of 100 000 streams × 2 events
// read with Scan, in pages of 10 000 events (as the relay catches up),
// beside one streaming SELECT of the same rows in the same order: the
// read side of a catch-up, without publishing or saving anything.
func BenchmarkScanPages(b *testing.B) {
	db := testdb.New(b)
	if _, err := db.Pool.Exec(b.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
		SELECT 'stream-' || lpad(i::text, 6, '0'), s, convert_to(repeat('x', 100), 'UTF8'), 'm', 'w', '{bench}'
		  FROM generate_series(0, 99999) i, generate_series(1, 2) s`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(b.Context(), `VACUUM ANALYZE journal`); err != nil {
		b.Fatal(err)
	}
	const total = 200_000
	j := pgjournal.New(db.Pool)
	scan, sel := compare(b, total, 1,
		side{Name: "scan-pages", Op: func(ctx context.Context) error {
			opts := journal.ScanOptions{Limit: 10_000}
			n := 0
			for {
				page := 0
				var last journal.Event
				for ev, err := range j.Scan(ctx, opts) {
					if err != nil {
						return err
					}
					last = ev
					page++
				}
				n += page
				if page < opts.Limit {
					break
				}
				opts.After = journal.Position{PersistenceID: last.PersistenceID, SequenceNr: last.SequenceNr}
			}
			if n != total {
				return fmt.Errorf("scanned %d events, want %d", n, total)
			}
			return nil
		}},
		side{Name: "select", Op: func(ctx context.Context) error {
			rows, err := db.Pool.Query(ctx, `SELECT sequence_nr, payload, manifest, writer_uuid, tags, written_at, persistence_id
  FROM journal ORDER BY persistence_id, sequence_nr`)
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			var (
				seq     int64
				payload []byte
				m, w    string
				tags    []string
				at      time.Time
				pid     string
			)
			for rows.Next() {
				if err := rows.Scan(&seq, &payload, &m, &w, &tags, &at, &pid); err != nil {
					return err
				}
				n++
			}
			if n != total {
				return fmt.Errorf("read %d events, want %d", n, total)
			}
			return rows.Err()
		}})
	benchratio.Print("scan_pages_200k_events_per_s_vs_select", sel, scan, benchratio.Goal{})
}
