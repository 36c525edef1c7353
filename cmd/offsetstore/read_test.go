package main

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// fixture is a test database with fixed rows: the outbox "orders" with
// three retained snapshots written by hand (fixed writers and times), and
// the source streams its keys follow.
type fixture struct {
	db *testdb.DB
}

// fixtureSnapshots are the snapshot rows of "orders", oldest first; 1 and
// 2 are pruned.
var fixtureSnapshots = []struct {
	seq     int64
	writer  string
	at      string
	offsets map[string]uint64
}{
	{3, "relay-a", "2024-05-01 12:00:00.123456+00", map[string]uint64{"order-1": 10, "order-2": 3}},
	{4, "relay-a", "2024-05-01 12:01:00+00", map[string]uint64{"order-1": 15, "order-2": 3, "order-3": 12}},
	{5, "relay-b", "2024-05-01 14:02:30.5+02", map[string]uint64{
		"order-1": 17, "order-2": 3, "order-3": 12, "order-4": 25, "key with space": 1, "заказ-7": 0,
	}},
}

// fixtureStreams are the source streams and their highest sequence
// numbers: order-4 ends before its offset (negative lag), заказ-7 has no
// events.
var fixtureStreams = map[string]int{"order-1": 20, "order-2": 10, "order-3": 12, "order-4": 20, "key with space": 4, "other": 7}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := testdb.New(t)
	seed(t, db, pgx.Identifier{"journal"})
	return &fixture{db: db}
}

// seed writes the fixture's rows into table.
func seed(t *testing.T, db *testdb.DB, table pgx.Identifier) {
	t.Helper()
	ctx := t.Context()
	tbl := table.Sanitize()
	for _, s := range fixtureSnapshots {
		payload, err := codec.Encode(s.offsets)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO `+tbl+` (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags, written_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz)`,
			store.PersistenceID("orders"), s.seq, payload, codec.Manifest, s.writer, []string{store.Tag}, s.at); err != nil {
			t.Fatalf("seed snapshot %d: %v", s.seq, err)
		}
	}
	for pid, n := range fixtureStreams {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO `+tbl+` (persistence_id, sequence_nr, payload)
			SELECT $1, g, '\x00'::bytea FROM generate_series(1, $2::int) AS g`, pid, n); err != nil {
			t.Fatalf("seed stream %s: %v", pid, err)
		}
	}
	// A deleted highest row, as DeleteTo leaves it: counted by lag, never shown.
	if _, err := db.Pool.Exec(ctx, `UPDATE `+tbl+` SET deleted = true WHERE persistence_id = 'order-3' AND sequence_nr = 12`); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) args(args ...string) []string {
	return append(args, "--database-url", f.db.URL)
}

func (f *fixture) rows(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM journal`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// readCases are the read commands with golden output on the fixture.
var readCases = []struct {
	golden string
	args   []string
}{
	{"show", []string{"show", "orders"}},
	{"show_limit", []string{"show", "orders", "--limit", "2"}},
	{"show_json", []string{"show", "orders", "--json"}},
	{"history", []string{"history", "orders"}},
	{"history_json", []string{"history", "orders", "--json"}},
	{"lag", []string{"lag", "orders"}},
	{"lag_top", []string{"lag", "orders", "--top", "2"}},
	{"lag_json", []string{"lag", "orders", "--json", "--top", "3"}},
}

func TestReadGolden(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range readCases {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			golden(t, tc.golden, mustRun(t, f.args(tc.args...)...))
		})
	}
	t.Run("export is show --json", func(t *testing.T) {
		t.Parallel()
		if got, want := mustRun(t, f.args("export", "orders")...), mustRun(t, f.args("show", "orders", "--json")...); got != want {
			t.Fatalf("export:\n%s\nshow --json:\n%s", got, want)
		}
	})
}

// TestTableFlag runs the read commands on a copy of the fixture in a
// table of another schema, with a name that needs quoting, and expects
// the same output.
func TestTableFlag(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.db.Pool.Exec(ctx, `CREATE SCHEMA "ops.v2"; CREATE TABLE "ops.v2"."Journal" (LIKE journal INCLUDING ALL)`); err != nil {
		t.Fatal(err)
	}
	seed(t, f.db, pgx.Identifier{"ops.v2", "Journal"})
	if _, err := f.db.Pool.Exec(ctx, `DELETE FROM journal`); err != nil {
		t.Fatal(err)
	}
	t.Run("read", func(t *testing.T) { // all of them before write
		for _, tc := range readCases {
			t.Run(tc.golden, func(t *testing.T) {
				t.Parallel()
				golden(t, tc.golden, mustRun(t, f.args(append(tc.args, "--table", `"ops.v2".Journal`)...)...))
			})
		}
		t.Run("default table is empty", func(t *testing.T) {
			t.Parallel()
			runCLI(t, f.args("show", "orders")...).wantFailure(t, exitFailure, `outbox "orders" not found`)
		})
		t.Run("missing table", func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, f.args("show", "orders", "--table", "ops.journal")...)
			r.wantFailure(t, exitFailure, "does not exist")
			if !strings.Contains(r.stderr, "hint: the journal table is missing") {
				t.Errorf("no hint in:\n%s", r.stderr)
			}
		})
	})
	t.Run("write", func(t *testing.T) {
		mustRun(t, f.args("rewind", "orders", "order-9=1", "--apply", "--table", `"ops.v2".Journal`)...)
		out := mustRun(t, f.args("show", "orders", "--table", `"ops.v2".Journal`)...)
		if !strings.Contains(out, "order-9") || !strings.Contains(out, "seq             6") {
			t.Fatalf("the rewind did not reach the table:\n%s", out)
		}
	})
}

func TestUnknownOutbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, cmd := range []string{"show", "history", "lag", "export"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, f.args(cmd, "nosuch")...)
			r.wantFailure(t, exitFailure, `outbox "nosuch" not found: no snapshot under persistence id "outbox::nosuch::offsets" in table "journal"`)
			if r.stdout != "" {
				t.Errorf("stdout: %q", r.stdout)
			}
		})
	}
}

func TestConnectionFromEnvironment(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want := mustRun(t, f.args("show", "orders")...)
	t.Run("DATABASE_URL", func(t *testing.T) {
		t.Parallel()
		r := cli{env: map[string]string{"DATABASE_URL": f.db.URL}}.run(t, "show", "orders")
		if r.code != 0 || r.stdout != want {
			t.Fatalf("exit %d, stderr %s, stdout:\n%s", r.code, r.stderr, r.stdout)
		}
	})
	t.Run("flag wins over DATABASE_URL", func(t *testing.T) {
		t.Parallel()
		r := cli{env: map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}}.run(t, f.args("show", "orders")...)
		if r.code != 0 || r.stdout != want {
			t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
		}
	})
	t.Run("migrate CLI URL", func(t *testing.T) {
		t.Parallel()
		u := strings.Replace(f.db.URL, "postgres://", "pgx5://", 1)
		if strings.Contains(u, "?") {
			u += "&x-migrations-table=offsetstore_schema_migrations"
		} else {
			u += "?x-migrations-table=offsetstore_schema_migrations"
		}
		if got := mustRun(t, "show", "orders", "--database-url", u); got != want {
			t.Fatalf("got:\n%s", got)
		}
	})
}

func TestLagManyKeys(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	const n = pgjournal.MaxHighestBatch + 5 // two statements
	offsets := make(map[string]uint64, n)
	for i := range n {
		offsets["s-"+strconv.Itoa(i)] = uint64(i % 3)
	}
	payload, err := codec.Encode(offsets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest) VALUES ($1, 1, $2, $3)`,
		store.PersistenceID("big"), payload, codec.Manifest); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload)
		SELECT 's-' || i, g, '\x00'::bytea FROM generate_series(0, $1::int - 1) AS i, generate_series(1, 2) AS g`, n); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "lag", "big", "--top", "1", "--database-url", db.URL)
	// Keys with offset 0 lag 2; every third key from s-0; ties by key.
	want := "outbox     big\nseq        1\nkeys       10005\nbehind     6670\nahead      0\ntotal_lag  10005\n\n" +
		"KEY  OFFSET  HIGHEST  LAG\ns-0       0        2    2\n... and 10004 more keys\n"
	if out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

// TestConnectionFromPGEnvironment: with neither --database-url nor
// DATABASE_URL, pgx reads the PG* variables. Not parallel: it sets the
// process environment.
func TestConnectionFromPGEnvironment(t *testing.T) {
	f := newFixture(t)
	u, err := url.Parse(f.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	for k, v := range map[string]string{
		"PGHOST": u.Hostname(), "PGPORT": u.Port(), "PGUSER": u.User.Username(), "PGPASSWORD": pw,
		"PGDATABASE": strings.TrimPrefix(u.Path, "/"), "PGSSLMODE": "disable",
	} {
		t.Setenv(k, v)
	}
	if got, want := mustRun(t, "show", "orders"), mustRun(t, f.args("show", "orders")...); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, want := latest(t); mustRun(t, "migrate", "version") != want {
		t.Fatalf("migrate version is not %q", want)
	}
}

// TestLagKeyWithNUL: the codec allows a NUL byte in a key (a snapshot of
// another writer may have one), PostgreSQL text does not.
func TestLagKeyWithNUL(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	payload, err := codec.Encode(map[string]uint64{"a\x00b": 3, "c": 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(t.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest) VALUES ($1, 1, $2, $3)`,
		store.PersistenceID("nul"), payload, codec.Manifest); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "lag", "nul", "--database-url", db.URL)
	if !strings.Contains(out, "KEY       OFFSET  HIGHEST  LAG\nc              1        0   -1\n\"a\\x00b\"       3        0   -3\n") {
		t.Fatalf("got:\n%s", out)
	}
}

// TestLagAllStreams: with --all-streams, lag also reports the source
// streams the outbox has no key for yet (issue 16: a stream the relay has
// not seen), never the offset store's own streams.
func TestLagAllStreams(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Another outbox's snapshots are no source stream either.
	mustRun(t, f.args("rewind", "billing", "order-1=1", "--apply", "--create")...)
	out := mustRun(t, f.args("lag", "orders", "--all-streams")...)
	want := "outbox     orders\nseq        5\nkeys       6\nunseen     1\nbehind     4\nahead      1\ntotal_lag  20\n\n" +
		"KEY               OFFSET  HIGHEST  LAG\n" +
		"order-2                3       10    7\n" +
		"other                  0        7    7\n"
	if !strings.HasPrefix(out, want) {
		t.Fatalf("got:\n%s\nwant it to start with:\n%s", out, want)
	}
	if strings.Contains(out, "outbox::") {
		t.Fatalf("lag lists an offset store stream:\n%s", out)
	}
	var doc struct {
		Keys   int  `json:"keys"`
		Unseen *int `json:"unseen"`
		Lag    []struct {
			Key    string `json:"key"`
			Unseen bool   `json:"unseen"`
		} `json:"lag"`
	}
	if err := decodeJSON(mustRun(t, f.args("lag", "orders", "--all-streams", "--json")...), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Keys != 6 || doc.Unseen == nil || *doc.Unseen != 1 || len(doc.Lag) != 7 || doc.Lag[1].Key != "other" || !doc.Lag[1].Unseen || doc.Lag[0].Unseen {
		t.Fatalf("lag --all-streams --json = %+v", doc)
	}
	// Without the flag, the output is as before: no unseen line.
	if out := mustRun(t, f.args("lag", "orders")...); strings.Contains(out, "unseen") || strings.Contains(out, "other") {
		t.Fatalf("lag without --all-streams:\n%s", out)
	}
}
