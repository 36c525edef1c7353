package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// TestSaveTxOnCitusRepeatableRead is the stale writer of
// TestSaveTxRepeatableReadFenced on the Citus cluster. Citus begins the
// transaction on the worker at the coordinator's isolation level, at the
// transaction's first statement there: here a read of the outbox's stream,
// before a peer saves three times and prunes. The stale SaveTx must be
// fenced before commit and its sink row rolled back. A SaveTx whose
// snapshot is older only than this store's own saves commits.
func TestSaveTxOnCitusRepeatableRead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		iso   pgx.TxIsoLevel
		peer  bool
		fence bool
	}{
		{name: "PeerSavedAndPruned", iso: pgx.RepeatableRead, peer: true, fence: true},
		{name: "PeerSavedAndPrunedSerializable", iso: pgx.Serializable, peer: true, fence: true},
		{name: "OwnSavesSince", iso: pgx.RepeatableRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := testdb.NewCitus(t)
			sink := pgx.Identifier{"sink_" + db.Name}.Sanitize()
			if _, err := db.Pool.Exec(ctx, `CREATE TABLE `+sink+` (event text PRIMARY KEY)`); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = db.Pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+sink) })
			j := pgjournal.New(db.Pool, pgjournal.WithTable(db.Table()), pgjournal.WithCitus())
			s := open(t, j, "tx")
			save(t, s, map[string]uint64{"a": 1})

			tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: tc.iso})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
			if _, err := tx.Exec(ctx, `INSERT INTO `+sink+` (event) VALUES ('e1')`); err != nil {
				t.Fatal(err)
			}
			var rows int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+db.Ident()+` WHERE persistence_id = $1`, s.PersistenceID()).Scan(&rows); err != nil || rows != 1 {
				t.Fatalf("the transaction's first read of the stream on its worker: %d rows, %v", rows, err)
			}
			want := map[string]uint64{"a": 2}
			if tc.peer {
				peerTakesOver(t, j, "tx")
				if got := highest(t, j, s.PersistenceID()); got != 4 {
					t.Fatalf("peer left highest %d, want 4", got)
				}
				want = map[string]uint64{"a": 9}
			} else {
				for v := uint64(3); v < 6; v++ {
					save(t, s, map[string]uint64{"b": v})
				}
				want = map[string]uint64{"a": 2, "b": 5}
			}

			called := false
			err = s.SaveTx(ctx, pgjournal.New(tx, pgjournal.WithTable(db.Table()), pgjournal.WithCitus()), map[string]uint64{"a": 2},
				func(ctx context.Context) error {
					called = true
					return tx.Commit(ctx)
				})
			var sinkRows []string
			readSink := func() []string {
				r, err := db.Pool.Query(ctx, `SELECT event FROM `+sink+` ORDER BY event`)
				if err != nil {
					t.Fatal(err)
				}
				evs, err := pgx.CollectRows(r, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				return evs
			}
			if !tc.fence {
				if err != nil || !called {
					t.Fatalf("SaveTx over own later saves = %v (commit called %v), want nil", err, called)
				}
				if sinkRows = readSink(); len(sinkRows) != 1 {
					t.Fatalf("sink rows %v, want [e1]", sinkRows)
				}
				wantOffsets(t, load(t, open(t, j, "tx")), want)
				return
			}
			var f *store.FencedError
			if !errors.As(err, &f) || f.Writer != "peer-relay" || called {
				t.Fatalf("stale SaveTx on Citus in a %s transaction = %v (commit called %v), want ErrFenced by peer-relay before commit", tc.iso, err, called)
			}
			_ = tx.Rollback(ctx)
			if sinkRows = readSink(); len(sinkRows) != 0 {
				t.Fatalf("sink rows %v after the fenced SaveTx, want none", sinkRows)
			}
			wantOffsets(t, load(t, open(t, j, "tx")), want)
		})
	}
}

// TestSaveOnCitusRepeatableReadPool is Save through a pool of the cluster
// whose transactions are REPEATABLE READ by default: each append reports
// journal.ErrUnverified, and the store reads the head after it. Its own
// rows are its own: every save succeeds and a second store loads them. A
// stale store behind a peer that saved and pruned is fenced, and its row
// is never loaded.
func TestSaveOnCitusRepeatableReadPool(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.NewCitus(t)
	rr := db.NewPool(t, testdb.DefaultIsolation("repeatable read"))
	j := pgjournal.New(rr, pgjournal.WithTable(db.Table()), pgjournal.WithCitus())
	s := open(t, j, "rr")
	for v := uint64(1); v <= 3; v++ {
		save(t, s, map[string]uint64{"a": v})
	}
	if got := s.SequenceNr(); got != 3 {
		t.Fatalf("SequenceNr = %d after three saves, want 3", got)
	}
	wantOffsets(t, load(t, open(t, j, "rr")), map[string]uint64{"a": 3})

	peerTakesOver(t, j, "rr")
	err := s.Save(ctx, map[string]uint64{"a": 4})
	var f *store.FencedError
	if !errors.As(err, &f) || f.Writer != "peer-relay" {
		t.Fatalf("stale Save on a REPEATABLE READ pool = %v, want ErrFenced by peer-relay", err)
	}
	wantOffsets(t, load(t, open(t, j, "rr")), map[string]uint64{"a": 9})
}
