package failover_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// TestDemotedPrimary: the primary is fenced without being stopped (made
// read-only) and the standby promoted, while a store (Save) and a writer
// of transactions (SaveTx with a sink row) hold pooled connections to the
// old primary through the multi-host URL. Each of those connections fails
// once with 25006 and is dropped; the writers go on against the promoted
// server within as many failures as their pools hold connections, and
// every save acknowledged before is there. A pool not prepared by
// pgjournal.ConfigurePool (the control) keeps its connection to the old
// primary: its transactions fail with 25006 again and again.
func TestDemotedPrimary(t *testing.T) {
	r := testdb.NewReplicated(t)
	ctx := t.Context()
	const poolSize = 3
	size := func(cfg *pgxpool.Config) { cfg.MaxConns, cfg.MinConns = poolSize, poolSize }
	storePool := newPool(t, r.URL, "demoted-store", false, size)
	txPool := newPool(t, r.URL, "demoted-tx", false, size)
	plainTx := newPool(t, r.URL, "demoted-plain", true, func(cfg *pgxpool.Config) { cfg.MaxConns, cfg.MinConns = 1, 1 })
	if _, err := storePool.Exec(ctx, `CREATE TABLE sink_demoted (pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	saver, err := store.Open(ctx, pgjournal.New(storePool), "demoted-save")
	if err != nil {
		t.Fatal(err)
	}
	txer, err := store.Open(ctx, pgjournal.New(storePool), "demoted-savetx")
	if err != nil {
		t.Fatal(err)
	}
	saveTx := func(ctx context.Context, pool *pgxpool.Pool, s *store.Store, seq uint64) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `INSERT INTO sink_demoted (pid, seq) VALUES ('a', $1)`, int64(seq)); err != nil {
			return err
		}
		return s.SaveTx(ctx, pgjournal.New(tx), map[string]uint64{"a": seq}, tx.Commit)
	}
	// Warm every pooled connection up on the primary.
	for seq := uint64(1); seq <= 2*poolSize; seq++ {
		if err := saver.Save(ctx, map[string]uint64{"a": seq}); err != nil {
			t.Fatal(err)
		}
		if err := saveTx(ctx, txPool, txer, seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := plainTx.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	acked := uint64(2 * poolSize)

	if err := r.DemotePrimary(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("pair: %s", r)
	// The writers go on: each pooled connection to the old primary fails
	// once and is dropped.
	goOn := func(name string, write func(seq uint64) error) {
		t.Helper()
		failures := 0
		var err error
		for seq := acked + 1; ; seq++ {
			if err = write(seq); err == nil {
				break
			}
			if !errors.Is(err, store.ErrInDoubt) {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.ReadOnlySQLTransaction {
					t.Logf("%s: failure %d: %v", name, failures+1, err)
				}
			}
			if failures++; failures > 2*poolSize {
				t.Fatalf("%s: still failing after %d attempts: %v", name, failures, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s: saving again against the promoted server after %d failures", name, failures)
		rel.Figure(t, "demoted_"+name+"_failures", float64(failures), "saves")
	}
	goOn("save", func(seq uint64) error {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return saver.Save(sctx, map[string]uint64{"a": seq})
	})
	goOn("savetx", func(seq uint64) error {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return saveTx(sctx, txPool, txer, seq)
	})
	for _, outbox := range []string{"demoted-save", "demoted-savetx"} {
		m, _, err := loadFresh(ctx, r.PrimaryURL(), outbox)
		if err != nil || m["a"] <= acked {
			t.Fatalf("%s on the promoted server: %v, %v; want a above %d", outbox, m, err, acked)
		}
	}

	// The control: the same transaction on a pool not prepared fails with
	// 25006 every time, on its one connection to the old primary.
	for i := range 5 {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := plainTx.Exec(ictx, `INSERT INTO sink_demoted (pid, seq) VALUES ('control', $1)`, i)
		cancel()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.ReadOnlySQLTransaction {
			t.Fatalf("control, attempt %d: %v, want 25006 from the old primary again", i+1, err)
		}
	}
}
