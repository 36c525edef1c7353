package reliability_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// appRole creates a login role that may connect to db and use the public
// schema, and has the given privileges on the journal table and nothing
// else. It returns a pool connected as that role. The role is dropped when
// the test ends, after db.
func appRole(t *testing.T, privileges string) (*testdb.DB, *pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	srv := testdb.Shared(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	role := "offsetstore_app_" + hex.EncodeToString(b[:])
	password := hex.EncodeToString(b[:]) + "-pw"
	// Registered before testdb.New, so that it runs after the database is
	// dropped (cleanups run last-in first-out): a role cannot be dropped
	// while it holds privileges in a database.
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), srv.AdminURL)
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	db := testdb.New(t)
	r, d := pgx.Identifier{role}.Sanitize(), pgx.Identifier{db.Name}.Sanitize()
	for _, stmt := range []string{
		"CREATE ROLE " + r + " LOGIN PASSWORD '" + password + "'",
		"GRANT CONNECT ON DATABASE " + d + " TO " + r,
		"GRANT USAGE ON SCHEMA public TO " + r,
		"GRANT " + privileges + " ON TABLE journal TO " + r,
	} {
		if _, err := db.Pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	pool := db.NewPool(t, func(c *pgxpool.Config) {
		c.ConnConfig.User = role
		c.ConnConfig.Password = password
	})
	return db, pool, role
}

func wantSQLState(t *testing.T, what string, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Errorf("%s = %v, want SQLSTATE %s", what, err, code)
	}
}

// TestLeastPrivilege runs the store as a role with only SELECT, INSERT,
// UPDATE and DELETE on the journal table: every operation works,
// retention pruning included, and the role can change no schema.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SelectInsertUpdateDelete", func(t *testing.T) {
		t.Parallel()
		db, pool, role := appRole(t, "SELECT, INSERT, UPDATE, DELETE")
		j := pgjournal.New(pool)
		s := open(t, j, "app", store.WithRetention(2), store.WithPruneInterval(1))
		for i := range 10 {
			save(t, s, map[string]uint64{"a": uint64(i) + 1, "b": 1})
		}
		if err := s.Rewind(ctx, map[string]uint64{"a": 3}); err != nil {
			t.Fatalf("Rewind as %s: %v", role, err)
		}
		if err := s.Forget(ctx, "b"); err != nil {
			t.Fatalf("Forget as %s: %v", role, err)
		}
		st := s.Stats()
		if st.PruneErrors != 0 || st.Prunes == 0 {
			t.Fatalf("as %s: %d prunes, %d failed; want pruning to work", role, st.Prunes, st.PruneErrors)
		}
		if n := countRows(t, db.Pool, s.PersistenceID()); n > 3 {
			t.Fatalf("%d rows kept, want at most retention 2 + prune interval 1", n)
		}
		// DeleteTo the newest snapshot marks it deleted: an UPDATE.
		if err := j.DeleteTo(ctx, s.PersistenceID(), s.SequenceNr()); err != nil {
			t.Fatalf("DeleteTo the highest as %s: %v", role, err)
		}
		if hi, err := j.HighestSequenceNr(ctx, s.PersistenceID()); err != nil || hi != s.SequenceNr() {
			t.Fatalf("HighestSequenceNr = %d, %v; want %d", hi, err, s.SequenceNr())
		}
		s2 := open(t, j, "app")
		save(t, s2, map[string]uint64{"c": 1})
		wantOffsets(t, load(t, s2), map[string]uint64{"c": 1})

		// No DDL, no TRUNCATE.
		for _, stmt := range []string{
			"CREATE TABLE evil (x int)",
			"CREATE TABLE public.evil (x int)",
			"CREATE SCHEMA evil",
			"DROP TABLE journal",
			"ALTER TABLE journal ADD COLUMN evil int",
			"CREATE INDEX evil ON journal (written_at)",
			"TRUNCATE journal",
		} {
			_, err := pool.Exec(ctx, stmt)
			wantSQLState(t, stmt+" as "+role, err, pgerrcode.InsufficientPrivilege)
		}
		rel.Figure(t, "privilege_prunes_as_app_role", float64(st.Prunes), "prunes")
	})

	t.Run("WithoutUpdate", func(t *testing.T) {
		t.Parallel()
		// Saving needs only SELECT and INSERT, and pruning (DeleteTo below
		// the highest row) only DELETE: pgjournal runs the UPDATE that
		// marks the highest row deleted only when DeleteTo reaches it.
		db, pool, role := appRole(t, "SELECT, INSERT, DELETE")
		j := pgjournal.New(pool)
		s := open(t, j, "app", store.WithRetention(2), store.WithPruneInterval(1))
		for i := range 6 {
			save(t, s, map[string]uint64{"a": uint64(i) + 1})
		}
		if err := s.Rewind(ctx, map[string]uint64{"a": 1}); err != nil {
			t.Fatalf("Rewind as %s: %v", role, err)
		}
		if err := s.Forget(ctx, "a"); err != nil {
			t.Fatalf("Forget as %s: %v", role, err)
		}
		wantOffsets(t, reload(t, db, "app"), map[string]uint64{})
		err := j.DeleteTo(ctx, s.PersistenceID(), 1)
		st := s.Stats()
		rows := countRows(t, db.Pool, s.PersistenceID())
		t.Logf("as %s (no UPDATE): prunes %d, failed %d; DeleteTo below the highest: %v; %d rows kept", role, st.Prunes, st.PruneErrors, err, rows)
		if err != nil || st.PruneErrors != 0 || st.Prunes == 0 {
			t.Fatalf("without UPDATE: DeleteTo below the highest = %v, prunes %d, failed %d; want pruning to work", err, st.Prunes, st.PruneErrors)
		}
		if rows > 2+1 {
			t.Fatalf("%d rows kept with retention 2 and prune interval 1", rows)
		}
		err = j.DeleteTo(ctx, s.PersistenceID(), s.SequenceNr())
		wantSQLState(t, "DeleteTo the highest without UPDATE", err, pgerrcode.InsufficientPrivilege)
		rel.Figure(t, "privilege_prune_works_without_update", 1, "bool")
	})
}
