package main

import (
	"fmt"
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/migrations"
)

// latest is "version=N dirty=false\n" for the newest embedded migration.
func latest(t *testing.T) (uint, string) {
	t.Helper()
	entries, err := migrations.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var last uint
	for _, e := range entries {
		var v uint
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil {
			last = max(last, v)
		}
	}
	if last == 0 {
		t.Fatal("no migrations embedded")
	}
	return last, fmt.Sprintf("version=%d dirty=false\n", last)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	ctx := t.Context()
	last, upToDate := latest(t)
	hasJournal := func() bool {
		t.Helper()
		var ok bool
		if err := db.Pool.QueryRow(ctx, `SELECT to_regclass('journal') IS NOT NULL`).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	url := []string{"--database-url", db.URL}
	step := func(want string, args ...string) {
		t.Helper()
		if got := mustRun(t, append(args, url...)...); got != want {
			t.Fatalf("offsetstore %v: got %q, want %q", args, got, want)
		}
	}

	step("version=0 dirty=false\n", "migrate", "version")
	step(upToDate, "migrate", "up")
	if !hasJournal() {
		t.Fatal("no journal table after migrate up")
	}
	step(upToDate, "migrate", "up") // up to date: success
	step(upToDate, "migrate", "version")
	var recorded int
	if err := db.Pool.QueryRow(ctx, `SELECT version FROM offsetstore_schema_migrations`).Scan(&recorded); err != nil || recorded != int(last) {
		t.Fatalf("migrations table: version %d, %v", recorded, err)
	}

	runCLI(t, append([]string{"migrate", "down"}, url...)...).wantFailure(t, exitUsage, "pass --yes")
	if !hasJournal() {
		t.Fatal("migrate down without --yes dropped the table")
	}
	step("version=0 dirty=false\n", "migrate", "down", "--yes")
	if hasJournal() {
		t.Fatal("journal table still there after migrate down")
	}
	step(upToDate, "migrate", "up")
	if !hasJournal() {
		t.Fatal("no journal table after up, down, up")
	}
}

func TestMigrateUnreachable(t *testing.T) {
	t.Parallel()
	runCLI(t, "migrate", "version", "--database-url", "postgres://u@127.0.0.1:1/db?connect_timeout=5").
		wantFailure(t, exitFailure, "cannot connect")
}
