package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// BenchmarkRewindToDatetime100k: offsetstore rewind --all-keys
// --to-datetime on an outbox of 100 000 keys whose streams hold 10 events
// each, T between the 5th and the 6th, so that every key moves back by 5
// (500 000 events to publish again). The dry run (connect, open the
// outbox, read the streams, print the diff) runs beside raw pgx on an open
// pool doing the least the same answer needs: the snapshot's row decoded,
// and one statement for every id at once. The applied run (the same, and
// the snapshot written) is measured once, its statements counted.
func BenchmarkRewindToDatetime100k(b *testing.B) {
	const keys, events = 100_000, 10
	db := testdb.New(b)
	ctx := context.Background()
	base := time.Date(2026, time.December, 1, 9, 0, 0, 0, time.UTC)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at)
		SELECT 'stream-' || k, s, '\x00'::bytea, $3::timestamptz + s * interval '1 minute'
		  FROM generate_series(1, $1::int) AS k, generate_series(1, $2::int) AS s`, keys, events, base); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE journal`); err != nil {
		b.Fatal(err)
	}
	offsets := make(map[string]uint64, keys)
	for k := 1; k <= keys; k++ {
		offsets[fmt.Sprintf("stream-%d", k)] = events
	}
	s, err := store.Open(ctx, pgjournal.New(db.Pool), "big")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Save(ctx, offsets); err != nil {
		b.Fatal(err)
	}
	at := base.Add(5*time.Minute + 30*time.Second)
	args := []string{"rewind", "big", "--all-keys", "--to-datetime", at.Format(time.RFC3339), "--database-url", db.URL}

	counter := &statementCounter{}
	runOnce := func(extra ...string) (string, error) {
		var out, errb bytes.Buffer
		code := run(ctx, append(append([]string{}, args...), extra...), &app{
			stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
			getenv:        func(string) string { return "" },
			configurePool: func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = counter },
		})
		if code != 0 {
			return "", fmt.Errorf("exit %d: %s", code, errb.String())
		}
		return out.String(), nil
	}
	wantMoves := fmt.Sprintf("back: %d keys by %d events in all", keys, keys*(events-5))

	raw := db.NewPool(b, nil)
	pid := store.PersistenceID("big")
	ids := make([]string, 0, keys)
	for k := range offsets {
		ids = append(ids, k)
	}
	rawSQL := `SELECT p.pid, b.sequence_nr FROM unnest($1::text[]) AS p(pid)
  CROSS JOIN LATERAL (SELECT sequence_nr FROM journal WHERE persistence_id = p.pid AND written_at < $2
                      ORDER BY sequence_nr DESC LIMIT 1) AS b`

	dry, rawNs := benchratio.Alternate(b, 1, keys, "keys",
		benchratio.Side{Name: "cli-dry-run", Op: func(context.Context) error {
			out, err := runOnce()
			if err == nil && !strings.Contains(out, wantMoves) {
				err = fmt.Errorf("output lacks %q:\n%s", wantMoves, out)
			}
			return err
		}},
		benchratio.Side{Name: "raw", Op: func(ctx context.Context) error {
			var payload []byte
			if err := raw.QueryRow(ctx, `SELECT payload FROM journal WHERE persistence_id = $1 AND NOT deleted ORDER BY sequence_nr DESC LIMIT 1`, pid).Scan(&payload); err != nil {
				return err
			}
			if _, err := codec.Decode(payload); err != nil {
				return err
			}
			rows, err := raw.Query(ctx, rawSQL, ids, at)
			if err != nil {
				return err
			}
			var (
				p string
				n int64
			)
			_, err = pgx.ForEachRow(rows, []any{&p, &n}, func() error { return nil })
			return err
		}},
	)
	benchratio.Print("rewind_to_datetime_100k_dry_run_vs_raw", dry, rawNs, benchratio.Goal{})

	counter.n.Store(0)
	counter.batches.Store(0)
	start := time.Now()
	out, err := runOnce("--apply")
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(out, "wrote snapshot 2") {
		b.Fatalf("apply output:\n%s", out)
	}
	b.ReportMetric(float64(took.Milliseconds()), "apply-ms")
	b.ReportMetric(float64(counter.n.Load()), "apply-queries")
	b.ReportMetric(float64(counter.batches.Load()), "apply-batches")
	b.ReportMetric(dry/1e6, "dry-run-median-ms")
	fmt.Printf("rewind --to-datetime, %d keys: dry run %.0f ms (median), --apply %d ms: %d queries and %d batches (one round trip each, after a connection's first prepare)\n",
		keys, dry/1e6, took.Milliseconds(), counter.n.Load(), counter.batches.Load())
}
