package reliability_test

import (
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/faultproxy"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Environment variables of longer runs (see doc.go).
const (
	envLoadDuration  = "OFFSETSTORE_LOAD_DURATION"
	envSplitDuration = "OFFSETSTORE_SPLIT_DURATION"
	envResetDuration = "OFFSETSTORE_RESET_DURATION"
	envDropRounds    = "OFFSETSTORE_DROP_ROUNDS"
)

func open(t *testing.T, j journal.Journal, outbox string, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), j, outbox, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", outbox, err)
	}
	return s
}

func save(t *testing.T, s *store.Store, m map[string]uint64) {
	t.Helper()
	if err := s.Save(t.Context(), m); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func load(t *testing.T, s *store.Store) map[string]uint64 {
	t.Helper()
	m, err := s.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

// reload opens outbox afresh, on a pool of its own, and returns its
// offsets: what a restarted relay would resume from.
func reload(t *testing.T, db *testdb.DB, outbox string) map[string]uint64 {
	t.Helper()
	pool := db.NewPool(t, nil)
	defer pool.Close()
	return load(t, open(t, pgjournal.New(pool), outbox))
}

func wantOffsets(t *testing.T, got, want map[string]uint64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("offsets = %s, want %s", short(got), short(want))
	}
}

// lost returns the keys whose acknowledged offset is missing from or
// higher than got: acknowledged saves that did not survive.
func lost(got, acked map[string]uint64) []string {
	var keys []string
	for k, v := range acked {
		if g, ok := got[k]; !ok || g < v {
			keys = append(keys, fmt.Sprintf("%s: acked %d, found %d", k, v, g))
		}
	}
	return keys
}

// merge raises the offsets in dst to those of src, as a Save does.
func merge(dst, src map[string]uint64) {
	for k, v := range src {
		if v > dst[k] {
			dst[k] = v
		}
	}
}

// short prints a map, cut for large ones.
func short(m map[string]uint64) string {
	if len(m) <= 8 {
		return fmt.Sprint(m)
	}
	return fmt.Sprintf("map of %d keys", len(m))
}

// viaProxy returns a fault proxy in front of db's server and a pool on db
// whose connections pass through it.
func viaProxy(t *testing.T, db *testdb.DB, configure func(*pgxpool.Config)) (*pgxpool.Pool, *faultproxy.Proxy) {
	t.Helper()
	return faultproxy.Pool(t, db, db.URL, configure)
}

// countRows counts the journal rows of pid, deleted ones included.
func countRows(t *testing.T, pool *pgxpool.Pool, pid string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM journal WHERE persistence_id = $1`, pid).Scan(&n); err != nil {
		t.Fatalf("count rows of %q: %v", pid, err)
	}
	return n
}

// countAll counts every journal row.
func countAll(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM journal`).Scan(&n); err != nil {
		t.Fatalf("count journal rows: %v", err)
	}
	return n
}

// isFenced reports whether err is a fencing error.
func isFenced(err error) bool { return errors.Is(err, store.ErrFenced) }

// within runs f until it returns nil, fails with ErrFenced (for good) or
// d has passed, and returns its last error and the number of calls.
func within(d time.Duration, f func() error) (int, error) {
	deadline := time.Now().Add(d)
	for n := 1; ; n++ {
		err := f()
		if err == nil || isFenced(err) || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
