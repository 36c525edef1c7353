package testdb

import (
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestCitusCluster checks what the Citus tests rely on: two active
// workers, the migrated journal distributed by persistence_id over both,
// a test table colocated with it, and WorkerOf naming the worker whose
// shard a row lands in.
func TestCitusCluster(t *testing.T) {
	t.Parallel()
	db := NewCitus(t)
	ctx := t.Context()
	t.Logf("cluster started in %v", db.Cluster.StartTime)

	var workers int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM citus_get_active_worker_nodes()`).Scan(&workers); err != nil {
		t.Fatalf("active workers: %v", err)
	}
	if workers != len(citusWorkers) {
		t.Fatalf("%d active workers, want %d", workers, len(citusWorkers))
	}

	for _, table := range []string{"public.journal", db.Ident()} {
		var column string
		var colocated bool
		var shards, nodes int
		err := db.Pool.QueryRow(ctx,
			`SELECT t.distribution_column, t.colocation_id = j.colocation_id, t.shard_count,
			        (SELECT count(DISTINCT nodename) FROM citus_shards s WHERE s.table_name = t.table_name)
			   FROM citus_tables t, citus_tables j
			  WHERE t.table_name = $1::regclass AND j.table_name = 'public.journal'::regclass`, table).
			Scan(&column, &colocated, &shards, &nodes)
		if err != nil {
			t.Fatalf("%s in citus_tables: %v", table, err)
		}
		if column != "persistence_id" || !colocated || shards < 2 || nodes != len(citusWorkers) {
			t.Fatalf("%s: distributed by %q, colocated with journal %v, %d shards on %d workers; want persistence_id, true, shards on both workers",
				table, column, colocated, shards, nodes)
		}
	}

	// A row lands in the shard on the worker WorkerOf names.
	for _, pid := range []string{"outbox::a::offsets", "order-1", "order-2", "order-3"} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO `+db.Ident()+` (persistence_id, sequence_nr, payload) VALUES ($1, 1, '\x00')`, pid); err != nil {
			t.Fatalf("insert %q: %v", pid, err)
		}
		w, err := db.WorkerOf(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := db.Cluster.workers[w]; !ok {
			t.Fatalf("WorkerOf(%q) = %q, not a worker", pid, w)
		}
		var n int
		err = db.Pool.QueryRow(ctx,
			`SELECT count(*) FROM run_command_on_placements($1::regclass,
			    format('SELECT count(*) FROM %s WHERE persistence_id = %L', '%s', $2::text))
			  WHERE nodename = $3 AND result::int = 1`, db.Ident(), pid, w).Scan(&n)
		if err != nil {
			t.Fatalf("count %q on %s: %v", pid, w, err)
		}
		if n != 1 {
			t.Fatalf("%q: %d shards on %s hold the row, want 1", pid, n, w)
		}
	}
}
