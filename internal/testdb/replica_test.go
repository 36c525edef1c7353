package testdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
)

func replicaPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func count(t *testing.T, url string) int {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(t.Context(), `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplicatedSynchronous walks a synchronous pair through its
// controls: a commit is on the standby when it returns (remote_apply),
// waits while the standby is stopped, and after a failover every commit
// that returned is on the new primary, which the multi-host URL reaches.
func TestReplicatedSynchronous(t *testing.T) {
	r := testdb.NewReplicated(t, testdb.WithSynchronousCommit("remote_apply"))
	t.Logf("pair: %s", r)
	ctx := t.Context()
	pool := replicaPool(t, r.URL)
	if _, err := pool.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if n := count(t, r.StandbyURL()); n != 1 {
		t.Fatalf("standby has %d rows after a remote_apply commit, want 1", n)
	}

	// The standby stopped: a commit waits for it.
	if err := r.StopStandby(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := pool.Exec(wctx, `INSERT INTO t VALUES (2)`)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("commit with the synchronous standby stopped: %v, want it to wait past its deadline", err)
	}
	if err := r.StartStandby(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO t VALUES (3)`); err != nil {
		t.Fatal(err)
	}

	// Failover twice: slot 1 leads, then slot 0 again.
	for round := 1; round <= 2; round++ {
		before := r.PrimarySlot()
		promoted, rebuilt, err := r.Failover(ctx)
		if err != nil {
			t.Fatalf("failover %d: %v", round, err)
		}
		if r.PrimarySlot() == before {
			t.Fatalf("failover %d: the primary is still in slot %d", round, before)
		}
		t.Logf("failover %d: promoted after %v, new standby after %v; %s", round, promoted.Round(time.Millisecond), rebuilt.Round(time.Millisecond), r)
		// Through the same URL, the pool reaches the new primary (its
		// connections to the old one broke).
		var err2 error
		for range 50 {
			if _, err2 = pool.Exec(ctx, `INSERT INTO t VALUES (4)`); err2 == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err2 != nil {
			t.Fatalf("failover %d: insert through the multi-host URL: %v", round, err2)
		}
		// The two acknowledged before the first failover (the one that
		// waited may have committed too), and one per round.
		if n := count(t, r.PrimaryURL()); n < 2+round || n > 3+round {
			t.Fatalf("failover %d: %d rows on the new primary, want %d or %d", round, n, 2+round, 3+round)
		}
	}

	// A cut through the proxy breaks the pool's connections; the next
	// query works again.
	if n := r.Proxy(r.PrimarySlot()).ResetAll(); n == 0 {
		t.Fatal("no connection through the primary's proxy to cut")
	}
	var err3 error
	for range 3 {
		if _, err3 = pool.Exec(ctx, `SELECT 1`); err3 == nil {
			break
		}
	}
	if err3 != nil {
		t.Fatalf("after a cut: %v", err3)
	}
}

// TestReplicatedAsynchronous: with an asynchronous standby stopped, a
// commit returns at once, and what it wrote is not on the standby.
func TestReplicatedAsynchronous(t *testing.T) {
	r := testdb.NewReplicated(t, testdb.WithAsynchronousStandby())
	ctx := t.Context()
	pool := replicaPool(t, r.URL)
	if _, err := pool.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
		t.Fatal(err)
	}
	if err := r.StopStandby(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := pool.Exec(wctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatalf("commit with the asynchronous standby stopped: %v", err)
	}
	if err := r.KillPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, r.PrimaryURL()); n != 0 {
		t.Fatalf("the promoted standby has %d rows, want 0: it was stopped during the commit", n)
	}
}
