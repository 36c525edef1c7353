package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/migrations"
)

// cliURL is url as the migrate CLI takes it, with this project's
// migrations table.
func cliURL(url string) string {
	u := "pgx5://" + strings.TrimPrefix(url, "postgres://")
	if strings.Contains(u, "?") {
		return u + "&x-migrations-table=" + migrations.MigrationsTable
	}
	return u + "?x-migrations-table=" + migrations.MigrationsTable
}

// migrateTo moves the database at url to version with the migrate CLI.
func migrateTo(t *testing.T, url string, version string) {
	t.Helper()
	if out, err := execCLI(migrateCLI(t), sourceDir(t), cliURL(url), "goto", version); err != nil {
		t.Fatalf("migrate goto %s: %v\n%s", version, err, out)
	}
}

// feedColumn describes journal.xact_id in the schema of the connection
// ("" when there is no such column) and whether its index exists.
func feedColumn(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (column string, index bool) {
	t.Helper()
	err := q.QueryRow(t.Context(), `
		SELECT coalesce((SELECT format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
		                        || ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid)
		                   FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		                  WHERE a.attrelid = 'journal'::regclass AND a.attname = 'xact_id' AND NOT a.attisdropped), ''),
		       to_regclass('journal_xact_id_idx') IS NOT NULL`).Scan(&column, &index)
	if err != nil {
		t.Fatalf("read the feed column: %v", err)
	}
	return column, index
}

const wantFeedColumn = "xid8 NOT NULL DEFAULT pg_current_xact_id()"

// TestFeedColumnFilledByDefault: a writer that does not name the column
// (every statement below, as an older release or another service writes)
// gets its transaction's id, the top-level one in a subtransaction too.
func TestFeedColumnFilledByDefault(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.New(t)
	if col, idx := feedColumn(t, db.Pool); col != wantFeedColumn || !idx {
		t.Fatalf("journal.xact_id = %q (index %v), want %q with its index", col, idx, wantFeedColumn)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload) VALUES ('a', 1, '\x01')`); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT sub`); err != nil {
		t.Fatalf("savepoint: %v", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"journal"}, []string{"persistence_id", "sequence_nr", "payload"},
		pgx.CopyFromRows([][]any{{"b", int64(1), []byte{2}}, {"a", int64(2), []byte{3}}})); err != nil {
		t.Fatalf("copy in a subtransaction: %v", err)
	}
	if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT sub`); err != nil {
		t.Fatalf("release: %v", err)
	}
	var rows, distinct int
	var same bool
	if err := tx.QueryRow(ctx, `SELECT count(*), count(DISTINCT xact_id), bool_and(xact_id = pg_current_xact_id()) FROM journal`).Scan(&rows, &distinct, &same); err != nil {
		t.Fatalf("read xact_id: %v", err)
	}
	if rows != 3 || distinct != 1 || !same {
		t.Fatalf("%d rows with %d distinct xact_id (all the transaction's: %v), want 3 rows with the transaction's id", rows, distinct, same)
	}
}

// TestFeedMigrationOnExistingRows applies 000003 to a journal with rows:
// no rewrite (a catalog change), every old row reads as the migration's
// transaction's (committed, so visible to any later snapshot), writers
// that name only the old columns keep working; going down to 2 removes the column
// and its index and keeps the rows; up again restores both.
func TestFeedMigrationOnExistingRows(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.NewEmpty(t)
	migrateTo(t, db.URL, "2")
	if col, idx := feedColumn(t, db.Pool); col != "" || idx {
		t.Fatalf("at version 2: xact_id = %q (index %v), want none", col, idx)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload)
		SELECT 'old-' || i, 1, '\x00' FROM generate_series(1, 500) i`); err != nil {
		t.Fatalf("insert at version 2: %v", err)
	}
	before := relfilenode(t, db.Pool)

	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if col, idx := feedColumn(t, db.Pool); col != wantFeedColumn || !idx {
		t.Fatalf("after Up: xact_id = %q (index %v), want %q with its index", col, idx, wantFeedColumn)
	}
	if after := relfilenode(t, db.Pool); after != before {
		t.Fatalf("000003 rewrote the journal (relfilenode %d → %d), want a catalog change only", before, after)
	}
	var distinct int
	var visible bool
	if err := db.Pool.QueryRow(ctx, `SELECT count(DISTINCT xact_id), bool_and(pg_visible_in_snapshot(xact_id, pg_current_snapshot()))
		FROM journal WHERE persistence_id LIKE 'old-%'`).Scan(&distinct, &visible); err != nil {
		t.Fatalf("read old rows: %v", err)
	}
	if distinct != 1 || !visible {
		t.Fatalf("old rows: %d distinct xact_id (visible: %v), want one, committed", distinct, visible)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload) VALUES ('new', 1, '\x00')`); err != nil {
		t.Fatalf("insert without the column: %v", err)
	}

	migrateTo(t, db.URL, "2")
	if col, idx := feedColumn(t, db.Pool); col != "" || idx {
		t.Fatalf("after down to 2: xact_id = %q (index %v), want none", col, idx)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM journal`).Scan(&n); err != nil || n != 501 {
		t.Fatalf("after down to 2: %d rows (err %v), want 501", n, err)
	}
	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	if col, idx := feedColumn(t, db.Pool); col != wantFeedColumn || !idx {
		t.Fatalf("after up again: xact_id = %q (index %v), want %q with its index", col, idx, wantFeedColumn)
	}
}

// TestFeedMigrationKeepsAnIndexBuiltConcurrently: an operator who built
// the index CONCURRENTLY ahead of the migration keeps it.
func TestFeedMigrationKeepsAnIndexBuiltConcurrently(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.NewEmpty(t)
	migrateTo(t, db.URL, "2")
	for _, sql := range []string{
		`ALTER TABLE journal ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id()`,
		`CREATE INDEX CONCURRENTLY journal_xact_id_idx ON journal (xact_id)`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var oid uint32
	if err := db.Pool.QueryRow(ctx, `SELECT 'journal_xact_id_idx'::regclass::oid`).Scan(&oid); err != nil {
		t.Fatalf("index oid: %v", err)
	}
	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("Up: %v", err)
	}
	var again uint32
	if err := db.Pool.QueryRow(ctx, `SELECT 'journal_xact_id_idx'::regclass::oid`).Scan(&again); err != nil || again != oid {
		t.Fatalf("after Up the index is %d (err %v), want the one built before (%d)", again, err, oid)
	}
}

func relfilenode(t *testing.T, pool *pgxpool.Pool) uint32 {
	t.Helper()
	var n uint32
	if err := pool.QueryRow(t.Context(), `SELECT relfilenode FROM pg_class WHERE oid = 'journal'::regclass`).Scan(&n); err != nil {
		t.Fatalf("relfilenode: %v", err)
	}
	return n
}

// TestFeedMigrationOnCitus applies 000003 to a journal already
// distributed (the order an existing Citus deployment meets it in; the
// shared cluster's own journal is migrated before it is distributed, as
// the README says), in a schema of its own on the shared cluster: the
// column reaches every shard, rows inserted through the coordinator carry
// the coordinator's transaction id, and down removes it again.
func TestFeedMigrationOnCitus(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := testdb.SharedCitus(t)
	admin, err := pgxpool.New(ctx, c.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close()
	schema := "feedmig_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	url := c.URL
	if strings.Contains(url, "?") {
		url += "&search_path=" + schema
	} else {
		url += "?search_path=" + schema
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("connect with search_path: %v", err)
	}
	defer pool.Close()

	migrateTo(t, url, "2")
	if _, err := pool.Exec(ctx, `SELECT create_distributed_table('journal', 'persistence_id')`); err != nil {
		t.Fatalf("distribute: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload) SELECT 'old-' || i, 1, '\x00' FROM generate_series(1, 50) i`); err != nil {
		t.Fatalf("insert before: %v", err)
	}
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatalf("Up on the distributed journal: %v", err)
	}
	if v, _, err := migrations.Version(ctx, url); err != nil || v != latestVersion(t) {
		t.Fatalf("Version = %d, %v; want %d", v, err, latestVersion(t))
	}
	if col, idx := feedColumn(t, pool); col != wantFeedColumn || !idx {
		t.Fatalf("after Up: xact_id = %q (index %v), want %q with its index", col, idx, wantFeedColumn)
	}
	// Every shard has the column and an index on it.
	var shards, withIndex int
	rows, err := pool.Query(ctx, `SELECT success, result FROM run_command_on_shards('journal',
		$$SELECT count(*) FROM pg_attribute a JOIN pg_index i ON i.indrelid = a.attrelid AND i.indkey[0] = a.attnum
		   WHERE a.attrelid = '%s'::regclass AND a.attname = 'xact_id'$$)`)
	if err != nil {
		t.Fatalf("run_command_on_shards: %v", err)
	}
	var ok bool
	var result string
	_, err = pgx.ForEachRow(rows, []any{&ok, &result}, func() error {
		shards++
		if ok && result == "1" {
			withIndex++
		}
		return nil
	})
	if err != nil || shards == 0 || withIndex != shards {
		t.Fatalf("shards with an indexed xact_id: %d of %d (err %v), want all", withIndex, shards, err)
	}
	// A write through the coordinator carries the coordinator's id.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload) VALUES ('new', 1, '\x00')`); err != nil {
		t.Fatalf("insert after: %v", err)
	}
	// Two statements: one naming the journal is routed to the shard's
	// worker whole, pg_current_xact_id() included.
	var mine, stored string
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&mine); err != nil {
		t.Fatalf("read the coordinator's id: %v", err)
	}
	if err := tx.QueryRow(ctx, `SELECT xact_id::text FROM journal WHERE persistence_id = 'new'`).Scan(&stored); err != nil {
		t.Fatalf("read the row's id: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if mine != stored {
		t.Fatalf("row inserted through the coordinator has xact_id %s, want the coordinator's transaction %s", stored, mine)
	}
	migrateTo(t, url, "2")
	if col, idx := feedColumn(t, pool); col != "" || idx {
		t.Fatalf("after down to 2: xact_id = %q (index %v), want none", col, idx)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM journal`).Scan(&n); err != nil || n != 51 {
		t.Fatalf("after down to 2: %d rows (err %v), want 51", n, err)
	}
}

// TestFeedColumnOnSharedCitusJournal: the shared cluster migrates its
// journal, 000003 included, and then distributes it (the README's order):
// the column and its index are on every shard.
func TestFeedColumnOnSharedCitusJournal(t *testing.T) {
	t.Parallel()
	db := testdb.NewCitus(t)
	if col, idx := feedColumn(t, db.Pool); col != wantFeedColumn || !idx {
		t.Fatalf("shared Citus journal: xact_id = %q (index %v), want %q with its index", col, idx, wantFeedColumn)
	}
}
