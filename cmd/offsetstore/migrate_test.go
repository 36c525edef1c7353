package main

import (
	"context"
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
)

func TestMigrate(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	ctx := context.Background()
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
	step("version=1 dirty=false\n", "migrate", "up")
	if !hasJournal() {
		t.Fatal("no journal table after migrate up")
	}
	step("version=1 dirty=false\n", "migrate", "up") // up to date: success
	step("version=1 dirty=false\n", "migrate", "version")
	var recorded int
	if err := db.Pool.QueryRow(ctx, `SELECT version FROM offsetstore_schema_migrations`).Scan(&recorded); err != nil || recorded != 1 {
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
	step("version=1 dirty=false\n", "migrate", "up")
	if !hasJournal() {
		t.Fatal("no journal table after up, down, up")
	}
}

func TestMigrateUnreachable(t *testing.T) {
	t.Parallel()
	runCLI(t, "migrate", "version", "--database-url", "postgres://u@127.0.0.1:1/db?connect_timeout=5").
		wantFailure(t, exitFailure, "cannot connect")
}
