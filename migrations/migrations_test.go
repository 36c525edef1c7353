package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/migrations"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// schema describes the journal table and the migrations table from the
// catalog, in a stable text form, so two databases can be compared.
func schema(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	rows, err := pool.Query(ctx, `
		SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
		       coalesce(pg_get_expr(d.adbin, d.adrelid), '')
		  FROM pg_attribute a
		  JOIN pg_class c ON c.oid = a.attrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		 WHERE n.nspname = current_schema() AND c.relkind = 'r'
		   AND a.attnum > 0 AND NOT a.attisdropped
		 ORDER BY c.relname, a.attnum`)
	if err != nil {
		t.Fatalf("query columns: %v", err)
	}
	for rows.Next() {
		var rel, col, typ, def string
		var notNull bool
		if err := rows.Scan(&rel, &col, &typ, &notNull, &def); err != nil {
			t.Fatalf("scan: %v", err)
		}
		b.WriteString(rel + "." + col + " " + typ)
		if notNull {
			b.WriteString(" NOT NULL")
		}
		if def != "" {
			b.WriteString(" DEFAULT " + def)
		}
		b.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("columns: %v", err)
	}
	rows, err = pool.Query(ctx, `
		SELECT c.relname, co.contype::text, pg_get_constraintdef(co.oid)
		  FROM pg_constraint co
		  JOIN pg_class c ON c.oid = co.conrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = current_schema()
		 ORDER BY 1, 2, 3`)
	if err != nil {
		t.Fatalf("query constraints: %v", err)
	}
	for rows.Next() {
		var rel, typ, def string
		if err := rows.Scan(&rel, &typ, &def); err != nil {
			t.Fatalf("scan: %v", err)
		}
		b.WriteString(rel + " constraint " + typ + " " + def + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("constraints: %v", err)
	}
	rows, err = pool.Query(ctx, `
		SELECT tablename, indexdef FROM pg_indexes
		 WHERE schemaname = current_schema() ORDER BY 1, 2`)
	if err != nil {
		t.Fatalf("query indexes: %v", err)
	}
	for rows.Next() {
		var rel, def string
		if err := rows.Scan(&rel, &def); err != nil {
			t.Fatalf("scan: %v", err)
		}
		b.WriteString(rel + " index " + def + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("indexes: %v", err)
	}
	var version int64
	var dirty bool
	if err := pool.QueryRow(ctx, `SELECT version, dirty FROM offsetstore_schema_migrations`).Scan(&version, &dirty); err == nil {
		b.WriteString("migrations table: version " + strconv.FormatInt(version, 10) + " dirty " + strconv.FormatBool(dirty) + "\n")
	}
	return b.String()
}

func TestSchemaFromCatalog(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	got := schema(t, db.Pool)
	for _, want := range []string{
		"journal.persistence_id text NOT NULL\n",
		"journal.sequence_nr bigint NOT NULL\n",
		"journal.payload bytea NOT NULL\n",
		"journal.manifest text NOT NULL DEFAULT ''::text\n",
		"journal.writer_uuid text NOT NULL DEFAULT ''::text\n",
		"journal.deleted boolean NOT NULL DEFAULT false\n",
		"journal.tags text[] NOT NULL DEFAULT '{}'::text[]\n",
		"journal.written_at timestamp with time zone NOT NULL DEFAULT now()\n",
		"journal.xact_id xid8 NOT NULL DEFAULT pg_current_xact_id()\n",
		"journal index CREATE INDEX journal_xact_id_idx ON public.journal USING btree (xact_id)\n",
		"journal constraint c CHECK ((sequence_nr > 0))\n",
		"journal constraint p PRIMARY KEY (persistence_id, sequence_nr)\n",
		fmt.Sprintf("migrations table: version %d dirty false\n", latestVersion(t)),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("schema lacks %q; schema:\n%s", want, got)
		}
	}
	// Exactly the columns above, no more.
	if n := strings.Count(got, "\njournal.") + boolInt(strings.HasPrefix(got, "journal.")); n != 9 {
		t.Errorf("journal has %d columns, want 9:\n%s", n, got)
	}
	// The check constraint really rejects sequence_nr 0.
	_, err := db.Pool.Exec(context.Background(), `INSERT INTO journal (persistence_id, sequence_nr, payload) VALUES ('p', 0, '')`)
	if err == nil || !strings.Contains(err.Error(), "23514") {
		t.Fatalf("insert seq 0: err = %v, want a check violation (SQLSTATE 23514)", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestUpIsIdempotent(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	before := schema(t, db.Pool)
	if err := migrations.Up(context.Background(), db.URL); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if after := schema(t, db.Pool); after != before {
		t.Fatalf("second Up changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewEmpty(t)
	if v, dirty, err := migrations.Version(ctx, db.URL); err != nil || v != 0 || dirty {
		t.Fatalf("Version on an empty database = %d, %v, %v; want 0, false, nil", v, dirty, err)
	}
	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("Up: %v", err)
	}
	first := schema(t, db.Pool)
	if v, dirty, err := migrations.Version(ctx, db.URL); err != nil || v != latestVersion(t) || dirty {
		t.Fatalf("Version after Up = %d, %v, %v; want %d, false, nil", v, dirty, err, latestVersion(t))
	}
	if err := migrations.Down(ctx, db.URL); err != nil {
		t.Fatalf("Down: %v", err)
	}
	var exists bool
	if err := db.Pool.QueryRow(ctx, `SELECT to_regclass('journal') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("after Down: journal exists = %v (err %v), want false", exists, err)
	}
	if err := migrations.Up(ctx, db.URL); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	if again := schema(t, db.Pool); again != first {
		t.Fatalf("up → down → up differs:\nfirst:\n%s\nagain:\n%s", first, again)
	}
}

func TestURLForms(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	if !strings.HasPrefix(db.URL, "postgres://") {
		t.Fatalf("test URL %q is not a postgres:// URL", db.URL)
	}
	rest := strings.TrimPrefix(db.URL, "postgres://")
	for _, u := range []string{
		"pgx5://" + rest,
		"postgresql://" + rest,
		db.URL + "&x-migrations-table=ignored&x-statement-timeout=5000",
	} {
		if err := migrations.Up(context.Background(), u); err != nil {
			t.Fatalf("Up(%q): %v", u, err)
		}
	}
	if v, _, err := migrations.Version(context.Background(), db.URL); err != nil || v != latestVersion(t) {
		t.Fatalf("Version = %d, %v; want %d", v, err, latestVersion(t))
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url, want string
	}{
		{"empty", "", "invalid database URL"},
		{"malformed", "postgres://user:pa ss@[::1:5432/db", "invalid database URL"},
		{"wrong scheme", "mysql://root@127.0.0.1:3306/db", "invalid database URL: unsupported scheme"},
		{"unreachable", "postgres://u:p@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "cannot connect to 127.0.0.1:1/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := migrations.Up(ctx, tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Up(%q) = %v, want an error containing %q", tc.url, err, tc.want)
			}
			if el := time.Since(start); el > 9*time.Second {
				t.Fatalf("Up took %v, past its context", el)
			}
		})
	}
	t.Run("context deadline", func(t *testing.T) {
		t.Parallel()
		// A listener that accepts and never answers: only ctx can end it.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		addr := silentListener(t)
		err := migrations.Up(ctx, "postgres://u:p@"+addr+"/db?sslmode=disable")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Up against a silent server = %v, want context.DeadlineExceeded", err)
		}
	})
}

// TestMigrateCLIMatchesLibrary applies the files with the real migrate CLI
// (built with -tags pgx5, as the Makefile does) and compares the schema with
// the one Up produces, then runs the CLI's down and up again.
func TestMigrateCLIMatchesLibrary(t *testing.T) {
	t.Parallel()
	bin := migrateCLI(t)
	lib := testdb.New(t)
	cli := testdb.NewEmpty(t)
	dir := filepath.Join(sourceDir(t))
	// The CLI's pgx5 driver answers to the pgx5:// scheme.
	url := "pgx5://" + strings.TrimPrefix(cli.URL, "postgres://") + "&x-migrations-table=" + migrations.MigrationsTable
	if !strings.Contains(cli.URL, "?") {
		url = strings.Replace(url, "&", "?", 1)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-path", dir, "-database", url}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("migrate %v: %v\n%s", args, err, out)
		}
	}
	run("up")
	want, got := schema(t, lib.Pool), schema(t, cli.Pool)
	if got != want {
		t.Fatalf("CLI schema differs from library schema:\nCLI:\n%s\nlibrary:\n%s", got, want)
	}
	run("down", "-all")
	var exists bool
	if err := cli.Pool.QueryRow(context.Background(), `SELECT to_regclass('journal') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("after CLI down: journal exists = %v (err %v)", exists, err)
	}
	run("up")
	if again := schema(t, cli.Pool); again != want {
		t.Fatalf("CLI up → down → up differs:\n%s\nwant:\n%s", again, want)
	}
	// The library takes over from the CLI: nothing left to do.
	if err := migrations.Up(context.Background(), cli.URL); err != nil {
		t.Fatalf("library Up after CLI: %v", err)
	}
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// migrateCLI returns the migrate CLI: $MIGRATE_CLI if set, else a build of
// the version go.mod pins, with -tags pgx5.
func migrateCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MIGRATE_CLI"); p != "" {
		return p
	}
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "offsetstore-migrate-cli")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "migrate")
		cmd := exec.Command("go", "build", "-tags", "pgx5", "-o", cliPath, "github.com/golang-migrate/migrate/v4/cmd/migrate")
		cmd.Dir = sourceDir(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = errors.New(err.Error() + ": " + string(out))
		}
	})
	if cliErr != nil {
		t.Fatalf("build the migrate CLI: %v", cliErr)
	}
	return cliPath
}

func sourceDir(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Dir(file)
}

// latestVersion is the number of the newest migration in migrations.FS.
func latestVersion(t *testing.T) uint {
	t.Helper()
	ups, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil || len(ups) == 0 {
		t.Fatalf("no up migrations in migrations.FS: %v", err)
	}
	var v uint
	if _, err := fmt.Sscanf(ups[len(ups)-1], "%d_", &v); err != nil {
		t.Fatalf("migration file %q: %v", ups[len(ups)-1], err)
	}
	return v
}
