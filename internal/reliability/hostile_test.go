package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/codec"
	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// catalog describes every relation of the database, with its row count
// for tables: what a statement must leave alone.
func catalog(t *testing.T, pool *pgxpool.Pool) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `
SELECT n.nspname, c.relname, c.relkind::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`)
	if err != nil {
		t.Fatalf("read catalog: %v", err)
	}
	type rel struct{ schema, name, kind string }
	var rels []rel
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.schema, &r.name, &r.kind); err != nil {
			t.Fatalf("scan catalog: %v", err)
		}
		rels = append(rels, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read catalog: %v", err)
	}
	out := make(map[string]int64, len(rels))
	for _, r := range rels {
		key := r.kind + " " + pgx.Identifier{r.schema, r.name}.Sanitize()
		out[key] = -1
		if r.kind == "r" {
			var n int64
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{r.schema, r.name}.Sanitize()).Scan(&n); err != nil {
				t.Fatalf("count %s: %v", key, err)
			}
			out[key] = n
		}
	}
	return out
}

func sameCatalog(t *testing.T, before, after map[string]int64) {
	t.Helper()
	for k, v := range before {
		if w, ok := after[k]; !ok {
			t.Errorf("%s is gone", k)
		} else if w != v {
			t.Errorf("%s: %d rows before, %d after", k, v, w)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared", k)
		}
	}
}

// TestHostileInput feeds the store and the journal what an attacker or a
// bug would: it must be refused with a typed error and nothing written,
// or stored as the data it is, never interpreted.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("InvalidNames", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		j := pgjournal.New(db.Pool)
		for _, name := range []string{"", "nul\x00name", "bad\xffutf8", "\xc3\x28", strings.Repeat("n", store.MaxNameLen+1), strings.Repeat("n", 1<<20)} {
			_, err := store.Open(ctx, j, name)
			if !errors.Is(err, store.ErrInvalidName) {
				t.Errorf("Open(%.20q) = %v, want ErrInvalidName", name, err)
			}
			if err != nil && len(err.Error()) > 512 {
				t.Errorf("Open(%.20q): the error is %d bytes long: it echoes the input", name, len(err.Error()))
			}
		}
		if n := countAll(t, db.Pool); n != 0 {
			t.Fatalf("%d journal rows, want 0", n)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		s := open(t, pgjournal.New(db.Pool), "keys")
		bad := []string{"", "nul\x00key", "bad\xffutf8", "\xed\xa0\x80", strings.Repeat("k", store.MaxKeyLen+1), strings.Repeat("k", 1<<20)}
		for _, k := range bad {
			calls := map[string]error{
				"Save":   s.Save(ctx, map[string]uint64{"good": 1, k: 1}),
				"Rewind": s.Rewind(ctx, map[string]uint64{"good": 1, k: 1}),
				"Forget": s.Forget(ctx, "good", k),
			}
			for op, err := range calls {
				if !errors.Is(err, store.ErrInvalidKey) {
					t.Errorf("%s with key %.20q (%d bytes) = %v, want ErrInvalidKey", op, k, len(k), err)
				}
				if err != nil && len(err.Error()) > 512 {
					t.Errorf("%s: the error is %d bytes long: it echoes the key", op, len(err.Error()))
				}
			}
		}
		if n := countAll(t, db.Pool); n != 0 {
			t.Fatalf("%d journal rows, want 0: a call with a bad key wrote something", n)
		}
		wantOffsets(t, load(t, s), map[string]uint64{})
	})

	t.Run("ValidOddities", func(t *testing.T) {
		t.Parallel()
		// At the limits, and text that looks like SQL, format verbs or
		// control characters: stored and read back as it is.
		db := testdb.New(t)
		before := catalog(t, db.Pool)
		names := []string{
			strings.Repeat("n", store.MaxNameLen),
			`x'; DROP TABLE journal; --`,
			`"journal"`,
			`a::offsets`,
			"tab\tnewline\n\u2028emoji\U0001F600",
			`%s %d $1 \x00 \\`,
		}
		want := map[string]uint64{
			strings.Repeat("k", store.MaxKeyLen): 1,
			`'); DELETE FROM journal; --`:        2,
			`$1`:                                 3,
			"\U0001F600\u202e":                   4,
			`\`:                                  5,
			"outbox::keys::offsets":              math.MaxUint64,
		}
		for _, name := range names {
			s := open(t, pgjournal.New(db.Pool), name)
			save(t, s, want)
			wantOffsets(t, reload(t, db, name), want)
		}
		after := catalog(t, db.Pool)
		before[`r "public"."journal"`] += int64(len(names)) // one snapshot each
		sameCatalog(t, before, after)
	})

	t.Run("HostileTable", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		seed := open(t, pgjournal.New(db.Pool), "seed")
		save(t, seed, map[string]uint64{"a": 1})
		before := catalog(t, db.Pool)
		cases := []struct {
			schema, table string
			want          error  // a journal error before any I/O, or
			code          string // the server's SQLSTATE
		}{
			{"", `journal"; DROP TABLE journal; --`, nil, pgerrcode.UndefinedTable},
			{"", `journal; DROP TABLE journal`, nil, pgerrcode.UndefinedTable},
			{`public"; DROP SCHEMA public CASCADE; --`, "journal", nil, pgerrcode.UndefinedTable},
			{"", `journal' OR '1'='1`, nil, pgerrcode.UndefinedTable},
			{"pg_catalog", "pg_class", nil, pgerrcode.UndefinedColumn},
			{"", "nul\x00table", journal.ErrInvalidArgument, ""},
			{"bad\xff", "journal", journal.ErrInvalidArgument, ""},
			{"", strings.Repeat("t", 64), journal.ErrInvalidArgument, ""},
		}
		for _, c := range cases {
			j := pgjournal.New(db.Pool, pgjournal.WithTable(c.schema, c.table))
			_, err := store.Open(ctx, j, "seed")
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Errorf("WithTable(%q, %q): Open = %v, want %v", c.schema, c.table, err, c.want)
				}
				continue
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != c.code {
				t.Errorf("WithTable(%q, %q): Open = %v, want SQLSTATE %s", c.schema, c.table, err, c.code)
			}
			// Writing goes through Append, which must fail the same way.
			err = j.Append(ctx, journal.Event{PersistenceID: "x", SequenceNr: 1, Payload: []byte{0, 0, 0, 0}})
			if !errors.As(err, &pgErr) || (pgErr.Code != pgerrcode.UndefinedTable && pgErr.Code != pgerrcode.UndefinedColumn && pgErr.Code != pgerrcode.InsufficientPrivilege) {
				t.Errorf("WithTable(%q, %q): Append = %v, want a missing table or column", c.schema, c.table, err)
			}
		}
		sameCatalog(t, before, catalog(t, db.Pool))

		// A table whose name is all of that, once it exists, is just a
		// table: the snapshots go there and nowhere else.
		odd := `journal"; DROP TABLE journal; --`
		if _, err := db.Pool.Exec(ctx, "CREATE TABLE "+pgx.Identifier{odd}.Sanitize()+" (LIKE journal INCLUDING ALL)"); err != nil {
			t.Fatal(err)
		}
		before = catalog(t, db.Pool)
		s := open(t, pgjournal.New(db.Pool, pgjournal.WithTable("public", odd)), "seed")
		save(t, s, map[string]uint64{"b": 2})
		after := catalog(t, db.Pool)
		before[`r "public".`+pgx.Identifier{odd}.Sanitize()]++
		sameCatalog(t, before, after)
		wantOffsets(t, reload(t, db, "seed"), map[string]uint64{"a": 1})
	})

	t.Run("SequenceOverflow", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		j := pgjournal.New(db.Pool)
		payload, err := codec.Encode(map[string]uint64{"a": 1})
		if err != nil {
			t.Fatal(err)
		}
		pid := store.PersistenceID("full")
		if err := j.Append(ctx, journal.Event{PersistenceID: pid, SequenceNr: math.MaxInt64, Payload: payload, Manifest: codec.Manifest, WriterUUID: "old", Tags: []string{store.Tag}}); err != nil {
			t.Fatal(err)
		}
		s := open(t, j, "full")
		if s.SequenceNr() != math.MaxInt64 {
			t.Fatalf("SequenceNr = %d, want math.MaxInt64", s.SequenceNr())
		}
		for _, call := range []func() error{
			func() error { return s.Save(ctx, map[string]uint64{"a": 2}) },
			func() error { return s.Rewind(ctx, map[string]uint64{"a": 0}) },
			func() error { return s.Forget(ctx, "a") },
		} {
			err := call()
			if err == nil || isFenced(err) || !strings.Contains(err.Error(), "overflow") {
				t.Fatalf("write past math.MaxInt64 = %v, want an overflow error", err)
			}
		}
		if n := countRows(t, db.Pool, pid); n != 1 {
			t.Fatalf("%d rows, want 1: something was written", n)
		}
		wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
		wantOffsets(t, reload(t, db, "full"), map[string]uint64{"a": 1})
	})
}

// TestMillionKeys saves one snapshot of 1 000 000 keys end to end on
// PostgreSQL and reads it back. It measures the payload and the times;
// -short skips it.
func TestMillionKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("1 000 000 keys: skipped with -short")
	}
	const n = 1_000_000
	ctx := context.Background()
	db := testdb.New(t)
	m := make(map[string]uint64, n)
	for i := range n {
		m[fmt.Sprintf("tenant-%02d/order-%07d", i%64, i)] = uint64(i) + 1
	}
	s := open(t, pgjournal.New(db.Pool), "million")
	t0 := time.Now()
	save(t, s, m)
	saveTime := time.Since(t0)

	t0 = time.Now()
	patch := map[string]uint64{"tenant-00/order-0000000": n + 1, "tenant-63/order-0999999": n + 1}
	save(t, s, patch)
	patchTime := time.Since(t0)
	merge(m, patch)

	var size int
	if err := db.Pool.QueryRow(ctx, `SELECT octet_length(payload) FROM journal WHERE persistence_id = $1 AND sequence_nr = 2`, s.PersistenceID()).Scan(&size); err != nil {
		t.Fatal(err)
	}
	pool := db.NewPool(t, nil)
	t0 = time.Now()
	s2 := open(t, pgjournal.New(pool), "million")
	openTime := time.Since(t0)
	got := load(t, s2)
	if len(got) != n {
		t.Fatalf("reloaded %d keys, want %d", len(got), n)
	}
	wantOffsets(t, got, m)
	t.Logf("1 000 000 keys: payload %d bytes, first save %v, a save of 2 changed keys %v, open %v",
		size, saveTime.Round(time.Millisecond), patchTime.Round(time.Millisecond), openTime.Round(time.Millisecond))
	rel.Figure(t, "million_keys_payload", float64(size), "bytes")
	rel.Figure(t, "million_keys_first_save", rel.Millis(saveTime), "ms")
	rel.Figure(t, "million_keys_patch_save", rel.Millis(patchTime), "ms")
	rel.Figure(t, "million_keys_open", rel.Millis(openTime), "ms")
}
