package localpg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// binaries returns the server binaries of this machine. Without them the
// tests skip, saying so, unless $OFFSETSTORE_TEST_BACKEND is local (as
// .ci/run sets it for its run without Docker): then they fail.
func binaries(t *testing.T) Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL; skipped with -short")
	}
	b, err := Find(t.Context())
	if err != nil {
		if os.Getenv("OFFSETSTORE_TEST_BACKEND") == "local" {
			t.Fatalf("OFFSETSTORE_TEST_BACKEND=local, and %v", err)
		}
		t.Skipf("no local PostgreSQL binaries, the local backend is not tested here: %v", err)
	}
	return b
}

func start(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s, err := Start(t.Context(), append([]Option{WithBinaries(binaries(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

func query(t *testing.T, url, sql string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	s := start(t, WithSetting("max_connections", "77"), WithDatabase("other"))
	var user, db, maxConns, addr string
	query(t, s.URL, `SELECT current_user, current_database(), current_setting('max_connections'), host(inet_server_addr())`, &user, &db, &maxConns, &addr)
	if user != DefaultUser || db != "other" || maxConns != "77" || addr != "127.0.0.1" {
		t.Fatalf("connected as %s to %s (max_connections %s) on %s; want %s, other, 77, 127.0.0.1", user, db, maxConns, addr, DefaultUser)
	}
	if !strings.Contains(s.String(), s.Binaries.Version) || !strings.Contains(s.String(), s.Dir) {
		t.Fatalf("String() = %q", s.String())
	}
	// Run as root, the server runs as another user, who owns the data.
	fi, err := os.Stat(filepath.Join(s.Dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	owner := fi.Sys().(*syscall.Stat_t).Uid
	switch {
	case os.Geteuid() == 0 && (s.RunAs == "" || owner == 0):
		t.Fatalf("run as root: the server runs as %q, its data owned by uid %d; want another user", s.RunAs, owner)
	case os.Geteuid() != 0 && (s.RunAs != "" || owner != uint32(os.Geteuid())):
		t.Fatalf("run as uid %d: the server runs as %q, its data owned by uid %d", os.Geteuid(), s.RunAs, owner)
	}
	// A wrong password is refused.
	bad := strings.Replace(s.URL, ":"+passwordOf(t, s.URL)+"@", ":wrong@", 1)
	if c, err := pgx.Connect(t.Context(), bad); err == nil {
		c.Close(t.Context())
		t.Fatal("a wrong password was accepted")
	}

	p := s.proc
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("postgres still runs after Stop")
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory is still there after Stop: %v", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
	if err := s.Restart(t.Context(), false); !errors.Is(err, ErrStopped) {
		t.Fatalf("Restart after Stop = %v, want ErrStopped", err)
	}
}

func passwordOf(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Password
}

// TestRestart: committed rows survive both kinds of restart, on the same
// address; an open session ends.
func TestRestart(t *testing.T) {
	t.Parallel()
	s := start(t)
	ctx := t.Context()
	c, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, `CREATE TABLE t (n int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for i, immediate := range []bool{true, false} {
		if err := s.Restart(ctx, immediate); err != nil {
			t.Fatalf("Restart(immediate %v): %v", immediate, err)
		}
		var n int
		query(t, s.URL, `SELECT count(*) FROM t`, &n)
		if n != i+1 {
			t.Fatalf("after Restart(immediate %v): %d rows, want %d", immediate, n, i+1)
		}
		query(t, s.URL, `WITH i AS (INSERT INTO t VALUES (2) RETURNING n) SELECT count(*) FROM i`, &n)
	}
	if err := c.Ping(ctx); err == nil {
		t.Fatal("a session from before the restarts still works")
	}
}

// TestStartCancelled: a Start whose context ends at any point leaves
// nothing behind: no directory, no server.
func TestStartCancelled(t *testing.T) {
	t.Parallel()
	b := binaries(t)
	cancelled := 0
	for _, after := range []time.Duration{0, 100 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond, 1500 * time.Millisecond} {
		base := reachableTempDir(t)
		ctx, cancel := context.WithTimeout(t.Context(), after)
		s, err := Start(ctx, WithBinaries(b), WithBaseDir(base))
		cancel()
		t.Logf("Start cancelled after %v: %v", after, err)
		switch {
		case err == nil:
			// Quicker than the deadline: Stop cleans up.
			if err := s.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
		case errors.Is(err, context.DeadlineExceeded):
			cancelled++
		default:
			t.Fatalf("Start cancelled after %v: %v, want context.DeadlineExceeded", after, err)
		}
		entries, rerr := os.ReadDir(base)
		if rerr != nil || len(entries) != 0 {
			t.Fatalf("cancelled after %v (Start: %v): %d entries left in the base directory (%v)", after, err, len(entries), rerr)
		}
	}
	if cancelled < 2 {
		t.Fatalf("only %d of the Starts were cancelled: the test checks too little", cancelled)
	}
}

// reachableTempDir is a t.TempDir that the server's user reaches when the
// tests run as root (t.TempDir's are 0700).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestFind: the newest version wins, a directory without both programs
// does not count, and none found says what to install.
func TestFind(t *testing.T) {
	t.Parallel()
	fake := func(version string, programs ...string) string {
		dir := t.TempDir()
		for _, p := range programs {
			script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + version + "'\n"
			if err := os.WriteFile(filepath.Join(dir, p), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	old := fake("9.6.24", "initdb", "postgres")
	ten := fake("10.23", "initdb", "postgres")
	newer := fake("17.2 (Debian 17.2-1)", "initdb", "postgres")
	noInitdb := fake("18.0", "postgres")
	got, err := newest(t.Context(), []string{old, noInitdb, newer, ten})
	if err != nil || got.Dir != newer || got.Version != "17.2" {
		t.Fatalf("newest = %+v, %v; want %s at 17.2", got, err, newer)
	}
	got, err = newest(t.Context(), []string{old, ten})
	if err != nil || got.Dir != ten {
		t.Fatalf("newest of 9.6 and 10 = %+v, %v; want 10", got, err)
	}
	_, err = newest(t.Context(), []string{noInitdb})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no program initdb") || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("newest without initdb = %v; want ErrNotFound naming the missing program and what to install", err)
	}
	if _, err := newest(t.Context(), nil); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), EnvBin) {
		t.Fatalf("newest of nothing = %v; want ErrNotFound with the install hint", err)
	}
}

func TestFindEnv(t *testing.T) {
	t.Setenv(EnvBin, "/nonexistent/bin")
	if _, err := Find(t.Context()); err == nil || !strings.Contains(err.Error(), "$"+EnvBin+"=/nonexistent/bin: /nonexistent/bin: no program initdb") {
		t.Fatalf("Find with a bad $%s = %v", EnvBin, err)
	}
}

// TestStandby: a standby streams what the primary commits, survives a
// halt and resume, and the primary comes back from a SIGKILL of its
// processes.
func TestStandby(t *testing.T) {
	t.Parallel()
	p := start(t)
	s, err := StartStandby(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	var recovery bool
	query(t, s.URL, `SELECT pg_is_in_recovery()`, &recovery)
	if !recovery || s.Port == p.Port || s.Dir == p.Dir {
		t.Fatalf("standby: in recovery %v, port %d (primary %d), dir %s", recovery, s.Port, p.Port, s.Dir)
	}
	exec := func(url, sql string) {
		t.Helper()
		c, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	seen := func(want int) {
		t.Helper()
		for i := 0; ; i++ {
			// The standby is asynchronous: until it replays the CREATE
			// TABLE, t does not exist there (42P01), as 0 rows.
			var n int
			err := withStandby(t, s.URL, func(c *pgx.Conn) error {
				return c.QueryRow(t.Context(), `SELECT count(*) FROM t`).Scan(&n)
			})
			var pgErr *pgconn.PgError
			if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P01") {
				t.Fatal(err)
			}
			if err == nil && n == want {
				return
			}
			if i == 100 {
				t.Fatalf("standby has %d rows (%v), want %d", n, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	exec(p.URL, `CREATE TABLE t (x int)`)
	exec(p.URL, `INSERT INTO t VALUES (1)`)
	seen(1)
	if err := s.Halt(t.Context()); err != nil {
		t.Fatal(err)
	}
	exec(p.URL, `INSERT INTO t VALUES (2)`)
	if err := s.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	seen(2)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(t.Context(), p.URL+"&connect_timeout=2"); err == nil {
		c.Close(t.Context())
		t.Fatal("the killed primary still accepts connections")
	}
	if err := p.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	exec(p.URL, `INSERT INTO t VALUES (3)`)
	seen(3)
}

// withStandby runs f on a connection of its own to url.
func withStandby(t *testing.T, url string, f func(*pgx.Conn) error) error {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return f(c)
}
