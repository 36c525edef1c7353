package testdb

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestServerRestart: both restarts of the shared server, on whatever
// backend this run uses (container or local binaries), keep committed
// rows and the address; pools reconnect by themselves.
func TestServerRestart(t *testing.T) {
	db := New(t)
	if !db.Server.CanRestart() {
		t.Skipf("the server of $%s cannot be restarted: %v", EnvDatabaseURL, ErrNoContainer)
	}
	t.Logf("backend: %s", db.Server)
	ctx := t.Context()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE t (n int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for _, kill := range []bool{true, false} {
		start := time.Now()
		if err := db.Server.Restart(ctx, kill); err != nil {
			t.Fatalf("Restart(kill %v): %v", kill, err)
		}
		t.Logf("Restart(kill %v) took %v", kill, time.Since(start).Round(time.Millisecond))
		var n int
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after Restart(kill %v): %v", kill, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n != 1 {
			t.Fatalf("after Restart(kill %v): %d rows, want 1", kill, n)
		}
	}
}

func TestBackendChoice(t *testing.T) {
	t.Setenv(EnvBackend, "bogus")
	if _, _, err := chooseBackend(t.Context()); err == nil || !strings.Contains(err.Error(), "want auto, container or local") {
		t.Fatalf("chooseBackend with %s=bogus = %v", EnvBackend, err)
	}
	t.Setenv(EnvBackend, "local")
	if b, _, err := chooseBackend(t.Context()); err != nil || b != BackendLocal {
		t.Fatalf("chooseBackend with %s=local = %v, %v", EnvBackend, b, err)
	}
	// DOCKER_HOST pointing nowhere hides Docker, even where the default
	// socket answers.
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := DockerEngine(ctx); err == nil || !strings.Contains(err.Error(), "DOCKER_HOST=unix:///nonexistent/docker.sock") {
		t.Fatalf("DockerEngine with DOCKER_HOST pointing nowhere = %v", err)
	}
}
