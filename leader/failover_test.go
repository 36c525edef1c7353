package leader_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/faultproxy"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/leader"
)

// standby starts Acquire on pool in the background; the lease (or nil
// after an error) arrives on the channel with the time it was granted.
func standby(t *testing.T, pool *pgxpool.Pool, outbox string) <-chan granted {
	t.Helper()
	ch := make(chan granted, 1)
	go func() {
		l, err := leader.Acquire(t.Context(), pool, outbox, fast)
		if err != nil {
			t.Errorf("standby Acquire: %v", err)
		}
		ch <- granted{l, time.Now()}
	}()
	waitWaiting(t, pool)
	return ch
}

type granted struct {
	lease *leader.Lease
	at    time.Time
}

// waitWaiting waits until a session waits for an advisory lock.
func waitWaiting(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the standby never waited for the lock")
}

func takeOver(t *testing.T, ch <-chan granted, within time.Duration) granted {
	t.Helper()
	select {
	case g := <-ch:
		if g.lease == nil {
			t.FailNow()
		}
		t.Cleanup(func() { _ = g.lease.Release(context.Background()) })
		return g
	case <-time.After(within):
		t.Fatalf("the standby did not take over within %v", within)
	}
	return granted{}
}

func waitLost(t *testing.T, l *leader.Lease, within time.Duration) time.Time {
	t.Helper()
	select {
	case <-l.Lost():
		if !errors.Is(l.Err(), leader.ErrLost) || !errors.Is(context.Cause(l.Context()), leader.ErrLost) {
			t.Fatalf("lost lease: Err %v, cause %v; want ErrLost", l.Err(), context.Cause(l.Context()))
		}
		return time.Now()
	case <-time.After(within):
		t.Fatalf("Lost did not fire within %v", within)
	}
	return time.Time{}
}

// pg_terminate_backend of the leader's session: Lost at once, the standby
// at once.
func TestFailoverTerminateBackend(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	a := mustTry(t, db.Pool, "orders")
	ch := standby(t, db.NewPool(t, nil), "orders")
	start := time.Now()
	var ok bool
	if err := db.Pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, int64(a.BackendPID())).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v, %v", ok, err)
	}
	lost := waitLost(t, a, time.Second)
	t.Logf("Lost after %v: %v", lost.Sub(start), a.Err())
	g := takeOver(t, ch, 2*time.Second)
	figure(t, "leader-lost-terminate", lost.Sub(start))
	figure(t, "leader-failover-terminate", g.at.Sub(start))
	if got := holder(t, db.Pool, "orders"); got != g.lease.BackendPID() {
		t.Fatalf("holder %d, want the standby's %d", got, g.lease.BackendPID())
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("Release of a lost lease: %v", err)
	}
}

// A silent cut (the proxy stops forwarding, both sockets stay open):
// the leader's ping times out within 2/5 of the session timeout, and the
// server ends the leader's session within the session timeout, freeing the
// lock for the standby.
func TestFailoverSilentCut(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Second
	t.Cleanup(func() { proxy.SetLatency(0); _ = proxy.Close() })
	viaProxy := db.NewPool(t, func(c *pgxpool.Config) {
		c.ConnConfig.Host, c.ConnConfig.Port = "127.0.0.1", proxy.Port()
	})
	a := mustTry(t, viaProxy, "orders")
	ch := standby(t, db.Pool, "orders")
	time.Sleep(500 * time.Millisecond) // a ping or two through the proxy

	// Every chunk is now held 2.5 session timeouts: nothing arrives in time.
	proxy.SetLatency(5 * timeout / 2)
	start := time.Now()
	lost := waitLost(t, a, timeout)
	g := takeOver(t, ch, timeout+2*time.Second)
	figure(t, "leader-lost-silent-cut", lost.Sub(start))
	figure(t, "leader-failover-silent-cut", g.at.Sub(start))
	if bound := 2 * timeout / 5; lost.Sub(start) > bound+500*time.Millisecond {
		t.Fatalf("Lost fired %v after the cut, want within 2/5 of the session timeout (%v)", lost.Sub(start), bound)
	}
	if !lost.Before(g.at) {
		t.Fatalf("the standby took over (%v) before the leader knew it had lost (%v)", g.at.Sub(start), lost.Sub(start))
	}
	if g.at.Sub(start) > timeout+time.Second {
		t.Fatalf("failover took %v, want within the session timeout %v", g.at.Sub(start), timeout)
	}
}

// The leader's process killed (SIGKILL): the kernel closes its socket and
// the server ends the session at once.
func TestFailoverProcessKilled(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLeaderHelperProcess$")
	cmd.Env = append(os.Environ(), "LEADER_HELPER_URL="+db.URL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	var pid string
	for lines.Scan() {
		if p, ok := strings.CutPrefix(lines.Text(), "leading pid="); ok {
			pid = p
			break
		}
	}
	if pid == "" {
		t.Fatal("the helper process never led")
	}
	ch := standby(t, db.Pool, "orders")
	start := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	g := takeOver(t, ch, 2*time.Second)
	figure(t, "leader-failover-process-killed", g.at.Sub(start))
	t.Logf("the killed leader's session was pid %s; the standby's is %d", pid, g.lease.BackendPID())
}

// TestLeaderHelperProcess is the leader process of
// TestFailoverProcessKilled; it does nothing in a normal run.
func TestLeaderHelperProcess(t *testing.T) {
	url := os.Getenv("LEADER_HELPER_URL")
	if url == "" {
		return
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	l, err := leader.Acquire(context.Background(), pool, "orders", fast)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("leading pid=" + strconv.Itoa(int(l.BackendPID())) + "\n")
	<-l.Lost() // until killed
	t.Fatal("lost")
}

// A server restart ends every session: the leader learns it at once, and
// the standby's Acquire retries through the outage and takes over once
// the server is back. It restarts the server shared by this test binary,
// so it does not run in parallel.
func TestFailoverServerRestart(t *testing.T) {
	db := testdb.New(t)
	for _, kill := range []bool{false, true} {
		a := mustTry(t, db.Pool, "orders")
		ch := standby(t, db.NewPool(t, nil), "orders")
		start := time.Now()
		if err := db.Server.Restart(t.Context(), kill); err != nil {
			if errors.Is(err, testdb.ErrNoContainer) {
				t.Skip("needs the container to restart it")
			}
			t.Fatal(err)
		}
		back := time.Now()
		lost := waitLost(t, a, time.Second)
		g := takeOver(t, ch, 10*time.Second)
		name := "leader-failover-restart"
		if kill {
			name = "leader-failover-crash"
		}
		t.Logf("kill=%v: restart took %v, Lost after %v", kill, back.Sub(start), lost.Sub(start))
		figure(t, name+"-after-server-up", g.at.Sub(back))
		if err := g.lease.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
