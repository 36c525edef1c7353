package leader_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/leader"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// fast is the session timeout of the tests: failover bounds in seconds,
// not tens of seconds.
var fast = leader.WithSessionTimeout(2 * time.Second)

// figure prints a measured figure in the form the benchmarks print ratios.
func figure(t *testing.T, name string, d time.Duration) {
	t.Helper()
	t.Logf("%s: %v", name, d)
	fmt.Printf("figure name=%s value=%.1f unit=ms\n", name, float64(d.Microseconds())/1000)
}

func mustTry(t *testing.T, pool *pgxpool.Pool, outbox string) *leader.Lease {
	t.Helper()
	l, ok, err := leader.TryAcquire(t.Context(), pool, outbox, fast)
	if err != nil || !ok {
		t.Fatalf("TryAcquire(%q) = %v, %v; want the lease", outbox, ok, err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

// holder returns the backend pid holding outbox's lock, 0 if none.
func holder(t *testing.T, pool *pgxpool.Pool, outbox string) uint32 {
	t.Helper()
	var pid uint32
	err := pool.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_locks
 WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND (classid::bigint << 32 | objid::bigint) = $1
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		leader.Key(outbox)).Scan(&pid)
	if err != nil {
		t.Fatalf("pg_locks: %v", err)
	}
	return pid
}

func TestTryAcquireWhileHeld(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	other := db.NewPool(t, nil)
	a := mustTry(t, db.Pool, "orders")
	if got := a.SessionTimeout(); got != 2*time.Second {
		t.Fatalf("SessionTimeout() = %v, want the 2s it was taken with", got)
	}
	if got := holder(t, db.Pool, "orders"); got != a.BackendPID() {
		t.Fatalf("pg_locks names pid %d as the holder, want the lease's %d", got, a.BackendPID())
	}
	if a.Err() != nil || a.Context().Err() != nil || a.Outbox() != "orders" || a.Key() != leader.Key("orders") {
		t.Fatalf("fresh lease: Err %v, Context %v, Outbox %q, Key %d", a.Err(), a.Context().Err(), a.Outbox(), a.Key())
	}
	// The lease's connection is not one of the pool's.
	if st := db.Pool.Stat(); st.AcquiredConns() != 0 {
		t.Fatalf("the pool has %d connections acquired while the lease is held, want 0", st.AcquiredConns())
	}
	for _, pool := range []*pgxpool.Pool{db.Pool, other} {
		b, ok, err := leader.TryAcquire(t.Context(), pool, "orders", fast)
		if err != nil || ok || b != nil {
			t.Fatalf("second TryAcquire = %v, %v, %v; want not acquired, no error", b, ok, err)
		}
	}
	mustTry(t, other, "payments") // another outbox is another lock

	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if !errors.Is(a.Err(), leader.ErrReleased) || !errors.Is(context.Cause(a.Context()), leader.ErrReleased) {
		t.Fatalf("after Release: Err %v, cause %v; want ErrReleased", a.Err(), context.Cause(a.Context()))
	}
	select {
	case <-a.Lost():
		t.Fatal("Lost closed by Release")
	default:
	}
	if got := holder(t, db.Pool, "orders"); got != 0 {
		t.Fatalf("pid %d still holds the lock after Release", got)
	}
	mustTry(t, other, "orders")
}

func TestAcquireWaits(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	a := mustTry(t, db.Pool, "orders")

	// A deadline ends the wait, and the waiting session with it.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	start := time.Now()
	_, err := leader.Acquire(ctx, db.Pool, "orders", fast)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Acquire with a 300ms deadline = %v after %v, want DeadlineExceeded promptly", err, time.Since(start))
	}
	waitNoWaiters(t, db.Pool)

	got := make(chan *leader.Lease, 1)
	go func() {
		l, err := leader.Acquire(t.Context(), db.Pool, "orders", fast)
		if err != nil {
			t.Errorf("Acquire: %v", err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("Acquire returned while another session held the lease")
	case <-time.After(2500 * time.Millisecond): // past a lock_timeout renewal
	}
	released := time.Now()
	if err := a.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := <-got
	if b == nil {
		t.FailNow()
	}
	defer b.Release(context.Background())
	figure(t, "leader-handoff-release", time.Since(released))
	if time.Since(released) > time.Second {
		t.Fatalf("standby took %v to take over after Release, want at once", time.Since(released))
	}
}

// waitNoWaiters waits until no session waits for an advisory lock.
func waitNoWaiters(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still wait for an advisory lock after their Acquire returned", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInvalidArguments(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	for _, tc := range []struct {
		name   string
		pool   *pgxpool.Pool
		outbox string
		opts   []leader.Option
	}{
		{"nil pool", nil, "orders", nil},
		{"empty outbox", db.Pool, "", nil},
		{"NUL", db.Pool, "a\x00b", nil},
		{"invalid UTF-8", db.Pool, "\xff", nil},
		{"too long", db.Pool, strings.Repeat("x", leader.MaxOutboxLen+1), nil},
		{"session timeout", db.Pool, "orders", []leader.Option{leader.WithSessionTimeout(time.Millisecond)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := leader.Acquire(t.Context(), tc.pool, tc.outbox, tc.opts...); !errors.Is(err, leader.ErrInvalidArgument) {
				t.Fatalf("Acquire: %v, want ErrInvalidArgument", err)
			}
			if _, _, err := leader.TryAcquire(t.Context(), tc.pool, tc.outbox, tc.opts...); !errors.Is(err, leader.ErrInvalidArgument) {
				t.Fatalf("TryAcquire: %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// The key is fixed by its documentation: these values must never change.
func TestKeyStable(t *testing.T) {
	t.Parallel()
	a, b := leader.Key("orders"), leader.Key("orders ")
	if a == b || a != leader.Key("orders") {
		t.Fatalf("Key: %d, %d", a, b)
	}
	t.Logf("Key(orders) = %d", a)
}
