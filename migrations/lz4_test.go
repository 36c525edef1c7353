package migrations_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/migrations"
)

// lz4Supported reports whether the server can compress with lz4.
func lz4Supported(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	var ok bool
	err := pool.QueryRow(t.Context(), `
		SELECT current_setting('server_version_num')::int >= 140000
		   AND EXISTS (SELECT 1 FROM pg_settings
		                WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals))`).Scan(&ok)
	if err != nil {
		t.Fatalf("query lz4 support: %v", err)
	}
	return ok
}

// columnCompression returns the journal payload column's compression
// setting: "l" for lz4, "" for the server's default.
func columnCompression(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var c string
	if err := pool.QueryRow(t.Context(), `
		SELECT attcompression::text FROM pg_attribute
		 WHERE attrelid = 'journal'::regclass AND attname = 'payload'`).Scan(&c); err != nil {
		t.Fatalf("query column compression: %v", err)
	}
	return strings.TrimRight(c, "\x00")
}

// insertCompressed writes a payload large and repetitive enough to be
// compressed at seq and returns the method it was compressed with.
func insertCompressed(t *testing.T, pool *pgxpool.Pool, seq int) string {
	t.Helper()
	ctx := t.Context()
	payload := []byte(strings.Repeat("order-0000001 published; ", 4000)) // 100 KB
	if _, err := pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload) VALUES ('lz4-check', $1, $2)`, seq, payload); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var method *string
	if err := pool.QueryRow(ctx, `SELECT pg_column_compression(payload) FROM journal WHERE persistence_id = 'lz4-check' AND sequence_nr = $1`, seq).Scan(&method); err != nil {
		t.Fatalf("pg_column_compression: %v", err)
	}
	if method == nil {
		t.Fatalf("row %d was stored uncompressed", seq)
	}
	return *method
}

// wantCompression is what rows written after 000002 must use: lz4 where
// the server has it, else its default.
func wantCompression(t *testing.T, pool *pgxpool.Pool) (setting, method string) {
	if lz4Supported(t, pool) {
		return "l", "lz4"
	}
	t.Logf("server without lz4: 000002 must be a no-op")
	return "", "pglz"
}

func TestNewPayloadsAreLZ4(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	setting, method := wantCompression(t, db.Pool)
	if got := columnCompression(t, db.Pool); got != setting {
		t.Fatalf("payload column compression = %q, want %q", got, setting)
	}
	if got := insertCompressed(t, db.Pool, 1); got != method {
		t.Fatalf("new row compressed with %s, want %s", got, method)
	}
}

func TestLZ4UpDownUpWithLibrary(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.NewEmpty(t)
	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("Up: %v", err)
	}
	setting, method := wantCompression(t, db.Pool)
	if v, dirty, err := migrations.Version(ctx, db.URL); err != nil || v != latestVersion(t) || dirty {
		t.Fatalf("Version after Up = %d, %v, %v; want %d, false, nil", v, dirty, err, latestVersion(t))
	}
	if got := columnCompression(t, db.Pool); got != setting {
		t.Fatalf("after Up: compression %q, want %q", got, setting)
	}
	if err := migrations.Down(ctx, db.URL); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if v, dirty, err := migrations.Version(ctx, db.URL); err != nil || v != 0 || dirty {
		t.Fatalf("Version after Down = %d, %v, %v; want 0, false, nil", v, dirty, err)
	}
	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	if got := columnCompression(t, db.Pool); got != setting {
		t.Fatalf("after up → down → up: compression %q, want %q", got, setting)
	}
	if got := insertCompressed(t, db.Pool, 1); got != method {
		t.Fatalf("new row compressed with %s, want %s", got, method)
	}
}

// TestLZ4DownOneStepWithCLI rolls back to before 000002 with the migrate CLI:
// the column goes back to the default, a row written then is pglz, and
// after up again new rows are lz4 while that row keeps pglz.
func TestLZ4DownOneStepWithCLI(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bin := migrateCLI(t)
	db := testdb.NewEmpty(t)
	url := "pgx5://" + strings.TrimPrefix(db.URL, "postgres://") + "&x-migrations-table=" + migrations.MigrationsTable
	if !strings.Contains(db.URL, "?") {
		url = strings.Replace(url, "&", "?", 1)
	}
	run := func(args ...string) {
		t.Helper()
		out, err := execCLI(bin, sourceDir(t), url, args...)
		if err != nil {
			t.Fatalf("migrate %v: %v\n%s", args, err, out)
		}
	}
	run("up")
	setting, method := wantCompression(t, db.Pool)
	if got := columnCompression(t, db.Pool); got != setting {
		t.Fatalf("after CLI up: compression %q, want %q", got, setting)
	}
	run("goto", "1")
	if v, _, err := migrations.Version(ctx, db.URL); err != nil || v != 1 {
		t.Fatalf("Version after CLI goto 1 = %d, %v; want 1", v, err)
	}
	if got := columnCompression(t, db.Pool); got != "" {
		t.Fatalf("after goto 1: compression %q, want the default", got)
	}
	if got := insertCompressed(t, db.Pool, 1); got != "pglz" {
		t.Fatalf("row written at version 1 compressed with %s, want pglz", got)
	}
	// The library takes it up again; the CLI and the library agree.
	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("library Up after CLI goto 1: %v", err)
	}
	if got := columnCompression(t, db.Pool); got != setting {
		t.Fatalf("after up again: compression %q, want %q", got, setting)
	}
	if got := insertCompressed(t, db.Pool, 2); got != method {
		t.Fatalf("new row compressed with %s, want %s", got, method)
	}
	var old string
	if err := db.Pool.QueryRow(ctx, `SELECT pg_column_compression(payload) FROM journal WHERE persistence_id = 'lz4-check' AND sequence_nr = 1`).Scan(&old); err != nil || old != "pglz" {
		t.Fatalf("the row written before keeps %q (err %v), want pglz", old, err)
	}
	run("down", "-all")
	run("up")
	if got := columnCompression(t, db.Pool); got != setting {
		t.Fatalf("after CLI down -all, up: compression %q, want %q", got, setting)
	}
}

// execCLI runs the migrate CLI bin on the files in dir against url.
func execCLI(bin, dir, url string, args ...string) ([]byte, error) {
	return exec.Command(bin, append([]string{"-path", dir, "-database", url}, args...)...).CombinedOutput()
}
