package pgjournal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// queryRecorder is a pgx tracer that keeps every statement a pool sends,
// with its arguments: it counts round trips and lets a test EXPLAIN what
// the journal ran.
type queryRecorder struct {
	mu      sync.Mutex
	queries []recordedQuery
}

type recordedQuery struct {
	sql  string
	args []any
}

func (r *queryRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, recordedQuery{data.SQL, slices.Clone(data.Args)})
	return ctx
}

func (r *queryRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements recorded so far and forgets them.
func (r *queryRecorder) take() []recordedQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queries
	r.queries = nil
	return q
}

// tracedJournal is a journal on a fresh database whose statements rec sees.
func tracedJournal(t *testing.T) (*pgjournal.Journal, *testdb.DB, *queryRecorder) {
	db := testdb.New(t)
	rec := &queryRecorder{}
	pool := db.NewPool(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = rec })
	return pgjournal.New(pool), db, rec
}

// fillStreams inserts streams × perStream tiny events named
// "stream-000000"… with generate_series, then VACUUM ANALYZE, so that the
// planner and the visibility map see the table as it is.
func fillStreams(t testing.TB, ctx context.Context, pool *pgxpool.Pool, table string, streams, perStream, payload int) {
	t.Helper()
	_, err := pool.Exec(ctx, `INSERT INTO `+table+` (persistence_id, sequence_nr, payload)
SELECT 'stream-' || lpad(s::text, 6, '0'), n, convert_to(repeat('x', $3), 'UTF8')
  FROM generate_series(1, $1::int) AS s, generate_series(1, $2::int) AS n`, streams, perStream, payload)
	if err != nil {
		t.Fatalf("fill %s: %v", table, err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+table); err != nil {
		t.Fatalf("vacuum %s: %v", table, err)
	}
}

// planOf runs EXPLAIN (ANALYZE, FORMAT JSON) of q and returns the node
// types of its plan and the rows the table's scans returned in total.
func planOf(t *testing.T, pool *pgxpool.Pool, q recordedQuery) (nodes []string, scanned float64) {
	t.Helper()
	var out []byte
	if err := pool.QueryRow(t.Context(), "EXPLAIN (ANALYZE, FORMAT JSON) "+q.sql, q.args...).Scan(&out); err != nil {
		t.Fatalf("EXPLAIN %s: %v", q.sql, err)
	}
	var plans []struct{ Plan map[string]any }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", out, err)
	}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		typ, _ := n["Node Type"].(string)
		nodes = append(nodes, typ)
		if strings.Contains(typ, "Scan") && n["Relation Name"] == "journal" {
			rows, _ := n["Actual Rows"].(float64)
			loops, _ := n["Actual Loops"].(float64)
			scanned += rows * loops
		}
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			walk(c.(map[string]any))
		}
	}
	walk(plans[0].Plan)
	return nodes, scanned
}

// A page of 100 ids out of 2 000 streams of 20 rows reads about 100 index
// entries, never the table: a loose index scan, one probe per id.
func TestPersistenceIDsLooseIndexScan(t *testing.T) {
	t.Parallel()
	j, db, rec := tracedJournal(t)
	fillStreams(t, t.Context(), db.Pool, "journal", 2000, 20, 10)
	for _, exclude := range []string{"", "outbox::"} {
		rec.take()
		ids, err := j.PersistenceIDs(t.Context(), journal.ListOptions{After: "stream-000500", Limit: 100, ExcludePrefix: exclude})
		if err != nil {
			t.Fatalf("PersistenceIDs: %v", err)
		}
		if len(ids) != 100 || ids[0] != "stream-000501" || ids[99] != "stream-000600" {
			t.Fatalf("PersistenceIDs = %d ids from %q to %q, want stream-000501..stream-000600", len(ids), ids[0], ids[len(ids)-1])
		}
		qs := rec.take()
		if len(qs) != 1 {
			t.Fatalf("PersistenceIDs sent %d statements, want 1", len(qs))
		}
		nodes, scanned := planOf(t, db.Pool, qs[0])
		t.Logf("exclude %q: plan %v, %v rows from journal", exclude, nodes, scanned)
		if slices.Contains(nodes, "Seq Scan") || !slices.Contains(nodes, "Recursive Union") {
			t.Fatalf("plan %v: want a recursive loose index scan, no Seq Scan", nodes)
		}
		if scanned > 110 {
			t.Fatalf("a page of 100 ids read %v rows of the journal, want about 100 (one per id)", scanned)
		}
	}
}

// The order is the column's collation order, whatever it is: the same as
// ORDER BY on the column, on the database's default collation and on a
// table whose persistence_id is COLLATE "C" (byte order).
func TestPersistenceIDsCollationOrder(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	ids := []string{"b", "B", "a-b", "ab", "a b", "aB", "Ab", "ä", "z", "Z", "日本", "10", "9", "_x", "outbox::o::offsets", "a:b", "é", "e", "f"}
	if _, err := db.Pool.Exec(ctx, `CREATE SCHEMA "Odd schema"`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE "Odd schema"."C journal" (LIKE journal INCLUDING ALL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE "Odd schema"."C journal" ALTER COLUMN persistence_id TYPE text COLLATE "C"`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, schema, table string
	}{
		{"default collation", "", "journal"},
		{"C collation", "Odd schema", "C journal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := pgjournal.New(db.Pool, pgjournal.WithTable(tc.schema, tc.table))
			var events []journal.Event
			for _, pid := range ids {
				events = append(events, journal.Event{PersistenceID: pid, SequenceNr: 1}, journal.Event{PersistenceID: pid, SequenceNr: 2})
			}
			if err := j.Append(ctx, events...); err != nil {
				t.Fatal(err)
			}
			rows, err := db.Pool.Query(ctx, `SELECT DISTINCT persistence_id FROM `+pgx.Identifier{tc.schema, tc.table}.Sanitize()+` ORDER BY persistence_id`)
			if tc.schema == "" {
				rows, err = db.Pool.Query(ctx, `SELECT DISTINCT persistence_id FROM journal ORDER BY persistence_id`)
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for pid, err := range journal.AllPersistenceIDs(ctx, j, journal.ListOptions{Limit: 4}) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, pid)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("listed %q, want ORDER BY's %q", got, want)
			}
			if tc.schema != "" {
				if sorted := slices.Sorted(slices.Values(ids)); !slices.Equal(got, sorted) {
					t.Fatalf("COLLATE \"C\" listed %q, want byte order %q", got, sorted)
				}
			}
			t.Logf("%s: %q", tc.name, got)
		})
	}
}

// 10 000 ids are one statement; one more makes two. Each id is one index
// probe, and input is checked before any I/O.
func TestHeadsRoundTrips(t *testing.T) {
	t.Parallel()
	j, db, rec := tracedJournal(t)
	fillStreams(t, t.Context(), db.Pool, "journal", 3000, 5, 10)
	pids := make([]string, 0, pgjournal.MaxHighestBatch+1)
	for i := range pgjournal.MaxHighestBatch + 1 {
		pids = append(pids, fmt.Sprintf("stream-%06d", i)) // 1..3000 exist, 0 and the rest do not
	}
	for _, n := range []int{pgjournal.MaxHighestBatch, pgjournal.MaxHighestBatch + 1} {
		rec.take()
		got, err := j.HighestSequenceNrs(t.Context(), pids[:n])
		if err != nil {
			t.Fatalf("HighestSequenceNrs(%d ids): %v", n, err)
		}
		qs := rec.take()
		if want := (n + pgjournal.MaxHighestBatch - 1) / pgjournal.MaxHighestBatch; len(qs) != want {
			t.Fatalf("HighestSequenceNrs(%d ids) sent %d statements, want %d", n, len(qs), want)
		}
		if len(got) != n {
			t.Fatalf("HighestSequenceNrs(%d ids) returned %d entries", n, len(got))
		}
		for i, pid := range pids[:n] {
			want := uint64(0)
			if i >= 1 && i <= 3000 {
				want = 5
			}
			if got[pid] != want {
				t.Fatalf("HighestSequenceNrs[%q] = %d, want %d", pid, got[pid], want)
			}
		}
		if n == pgjournal.MaxHighestBatch {
			nodes, scanned := planOf(t, db.Pool, qs[0])
			if slices.Contains(nodes, "Seq Scan") || scanned > float64(n)+1 {
				t.Fatalf("plan %v read %v rows of the journal for %d ids: want one index probe per id", nodes, scanned, n)
			}
		}
	}
	// Invalid input: no statement at all.
	rec.take()
	if _, err := j.HighestSequenceNrs(t.Context(), []string{"stream-000001", ""}); err == nil {
		t.Fatal("HighestSequenceNrs with an empty id succeeded")
	}
	if _, err := j.PersistenceIDs(t.Context(), journal.ListOptions{Limit: -1}); err == nil {
		t.Fatal("PersistenceIDs with a negative limit succeeded")
	}
	if qs := rec.take(); len(qs) != 0 {
		t.Fatalf("invalid input sent %d statements, want none", len(qs))
	}
}
