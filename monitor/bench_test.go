package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/monitor"
	"github.com/outboxkit/offsetstore/store"
)

// trips counts the round trips a pool makes: statements alone and
// pipelined batches.
type trips struct {
	n    atomic.Int64
	mu   sync.Mutex
	last struct {
		sql  string
		args []any
	} // the last statement of a batch
}

func (c *trips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *trips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *trips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *trips) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.mu.Lock()
	c.last.sql, c.last.args = d.SQL, d.Args
	c.mu.Unlock()
}
func (c *trips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// explainRows runs EXPLAIN (ANALYZE, FORMAT JSON) of sql and returns the
// rows the scans of the journal returned, summed over loops.
func explainRows(b *testing.B, pool *pgxpool.Pool, sql string, args ...any) float64 {
	b.Helper()
	var out []byte
	if err := pool.QueryRow(b.Context(), "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args...).Scan(&out); err != nil {
		b.Fatal(err)
	}
	var plans []struct {
		Plan          map[string]any
		ExecutionTime float64 `json:"Execution Time"`
	}
	if err := json.Unmarshal(out, &plans); err != nil {
		b.Fatal(err)
	}
	b.Logf("EXPLAIN ANALYZE: %.1f ms: %.50s", plans[0].ExecutionTime, sql)
	var rows float64
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if typ, _ := n["Node Type"].(string); strings.Contains(typ, "Scan") && n["Relation Name"] == "journal" {
			r, _ := n["Actual Rows"].(float64)
			l, _ := n["Actual Loops"].(float64)
			rows += r * l
		}
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			walk(c.(map[string]any))
		}
	}
	walk(plans[0].Plan)
	return rows
}

// BenchmarkPoll100kKeys is one poll of an outbox of 100 000 keys, 10 % of
// them behind (streams of 3 and of 30 events), the monitor's defaults on
// (streams without a key counted: a page of 10 000 ids listed per poll),
// against one raw SELECT of the same 100 000 heads (max(sequence_nr)
// GROUP BY over persistence_id = ANY of the keys), in the same run.
// Reports round trips, rows returned and journal rows read per operation.
func BenchmarkPoll100kKeys(b *testing.B) {
	for _, perStream := range []int{3, 30} {
		b.Run(fmt.Sprintf("events=%d", perStream), func(b *testing.B) { benchmarkPoll(b, perStream) })
	}
}

func benchmarkPoll(b *testing.B, perStream int) {
	const keys = 100_000
	db := testdb.New(b)
	ctx := b.Context()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload)
SELECT 'stream-' || lpad(s::text, 6, '0'), n, '\x00'::bytea
  FROM generate_series(1, $1::int) AS s, generate_series(1, $2::int) AS n`, keys, perStream); err != nil {
		b.Fatal(err)
	}
	offsets := make(map[string]uint64, keys)
	pids := make([]string, 0, keys)
	for i := 1; i <= keys; i++ {
		pid := fmt.Sprintf("stream-%06d", i)
		pids = append(pids, pid)
		offsets[pid] = uint64(perStream)
		if i%10 == 0 {
			offsets[pid] = 1
		}
	}
	s, err := store.Open(ctx, pgjournal.New(db.Pool), "bench")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Save(ctx, offsets); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE journal`); err != nil {
		b.Fatal(err)
	}
	counter := &trips{}
	pool := db.NewPool(b, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = counter })
	m, err := monitor.New(pgjournal.New(pool), monitor.WithOutboxes("bench"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Poll(ctx); err != nil { // opens and decodes the outbox once
		b.Fatal(err)
	}
	var pollTrips, pollRows int64
	ours := benchratio.Side{Name: "poll", Op: func(ctx context.Context) error {
		before := counter.n.Load()
		reports, err := m.Poll(ctx)
		if err != nil {
			return err
		}
		pollTrips = counter.n.Load() - before
		r := reports[0]
		if r.Lag != uint64(perStream-1)*keys/10 || r.Behind != keys/10 || r.Keys != keys {
			return fmt.Errorf("poll: lag %d, behind %d, keys %d", r.Lag, r.Behind, r.Keys)
		}
		pollRows = int64(r.Behind) // rows the lag read returned
		return nil
	}}
	raw := benchratio.Side{Name: "raw-heads", Op: func(ctx context.Context) error {
		rows, err := db.Pool.Query(ctx, `SELECT persistence_id, max(sequence_nr) FROM journal WHERE persistence_id = ANY($1) GROUP BY persistence_id`, pids)
		if err != nil {
			return err
		}
		n := 0
		var (
			pid string
			nr  int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&pid, &nr}, func() error { n++; return nil }); err != nil {
			return err
		}
		if n != keys {
			return fmt.Errorf("raw: %d heads", n)
		}
		return nil
	}}
	nsOurs, nsRaw := benchratio.Alternate(b, 1, keys, "keys", ours, raw)
	b.ReportMetric(float64(pollTrips), "poll-round-trips/op")
	b.ReportMetric(float64(pollRows), "poll-rows-returned/op")
	b.ReportMetric(keys, "raw-rows-returned/op")
	// Journal rows read, from the plans (untimed): the last lag statement
	// of the poll's batch (10 000 keys), times 10, against the raw GROUP BY.
	counter.mu.Lock()
	sql, args := counter.last.sql, counter.last.args
	counter.mu.Unlock()
	if !strings.Contains(sql, "unnest") {
		b.Fatalf("the poll's last batched statement is not the lag read: %s", sql)
	}
	b.ReportMetric(10*explainRows(b, db.Pool, sql, args...), "poll-lag-rows-read/op")
	b.ReportMetric(explainRows(b, db.Pool, `SELECT persistence_id, max(sequence_nr) FROM journal WHERE persistence_id = ANY($1) GROUP BY persistence_id`, pids), "raw-rows-read/op")
	benchratio.Print(fmt.Sprintf("monitor-poll-100k-keys-%d-events-vs-raw-heads", perStream), nsOurs, nsRaw, benchratio.Goal{})
	// What a DBA sees: the share of one core's time the exporter's polls
	// take at serve's default interval.
	benchratio.Print(fmt.Sprintf("monitor-poll-100k-keys-%d-events-share-of-15s", perStream), nsOurs, float64(15*time.Second), benchratio.Goal{Max: 0.05})
}
