package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// A delta refused because the journal lacks its base (rows lost under the
// store, as after a failover), where the read that tells a missing base
// from a stream ahead fails (a pool's next connection is dead, a
// connection is lost, a transaction the refusal aborted): the store must
// not take the refusal for another writer's row and fence itself on its
// own. Save writes a full snapshot instead; SaveTx asks for a run again
// (ErrRetryTx), which writes one.
func TestBaseMissingUnreadableIsNotFenced(t *testing.T) {
	t.Parallel()
	opts := []store.Option{store.WithIncremental(), store.WithCompactionRatio(1e9)}
	// lose deletes the newest row of s, 4: the next delta's base.
	lose := func(t *testing.T, db *testdb.DB, s *store.Store) {
		t.Helper()
		if _, err := db.Pool.Exec(t.Context(), `DELETE FROM journal WHERE persistence_id = $1 AND sequence_nr = 4`, s.PersistenceID()); err != nil {
			t.Fatal(err)
		}
	}
	saves := func(t *testing.T, s *store.Store) {
		t.Helper()
		for i := range 4 {
			save(t, s, map[string]uint64{"a": uint64(i + 1)})
		}
	}
	check := func(t *testing.T, j *pgjournal.Journal, s *store.Store, err error) {
		t.Helper()
		t.Logf("the write with the base missing and the highest unreadable: %v", err)
		if errors.Is(err, store.ErrFenced) {
			t.Fatalf("write = %v; the store fenced itself on its own rows", err)
		}
		if err := s.Save(t.Context(), map[string]uint64{"b": 1, "c": 1}); err != nil {
			t.Fatalf("the next Save = %v, want nil", err)
		}
		want := map[string]uint64{"a": 4, "b": 1, "c": 1}
		wantOffsets(t, load(t, s), want)
		wantOffsets(t, load(t, open(t, j, "unreadable")), want)
	}

	t.Run("pool", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		// failAfter > 0: let failAfter-1 more acquisitions through, then fail one.
		var failAfter atomic.Int32
		pool := db.NewPool(t, func(c *pgxpool.Config) {
			c.PrepareConn = func(context.Context, *pgx.Conn) (bool, error) {
				if failAfter.Load() > 0 && failAfter.Add(-1) == 0 {
					return false, errors.New("test: connection lost")
				}
				return true, nil
			}
		})
		j := pgjournal.New(pool)
		s := open(t, j, "unreadable", opts...)
		saves(t, s)
		lose(t, db, s)
		// The append's connection, then the next one fails: the read
		// after the refusal, on a journal that reads it on a connection
		// of its own; else the full snapshot's append (the save then
		// fails unacknowledged, and the next one writes it).
		failAfter.Store(2)
		err := s.Save(t.Context(), map[string]uint64{"b": 1})
		failAfter.Store(0)
		check(t, j, s, err)
	})
	t.Run("own DBTX", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		d := &ownDBTX{DBTX: db.Pool}
		j := pgjournal.New(d)
		s := open(t, j, "unreadable", opts...)
		saves(t, s)
		lose(t, db, s)
		d.failHighest.Store(true)
		err := s.Save(t.Context(), map[string]uint64{"b": 1})
		d.failHighest.Store(false)
		if err != nil {
			t.Fatalf("Save = %v, want nil (a full snapshot)", err)
		}
		check(t, j, s, err)
	})
	t.Run("SaveTx", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		db := testdb.New(t)
		j := pgjournal.New(db.Pool)
		s := open(t, j, "unreadable", opts...)
		saves(t, s)
		lose(t, db, s)
		saveTx := func(fail bool) error {
			tx, err := db.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			d := &ownDBTX{DBTX: tx}
			d.failHighest.Store(fail)
			return s.SaveTx(ctx, pgjournal.New(d), map[string]uint64{"b": 1}, tx.Commit)
		}
		err := saveTx(true)
		if !errors.Is(err, store.ErrRetryTx) {
			t.Fatalf("SaveTx = %v, want ErrRetryTx", err)
		}
		if err := saveTx(true); err != nil {
			t.Fatalf("SaveTx run again = %v, want nil (a full snapshot)", err)
		}
		check(t, j, s, err)
	})
}
