package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/url"
	"sync/atomic"
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
	s, err := store.Open(context.Background(), j, outbox, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", outbox, err)
	}
	return s
}

func save(t *testing.T, s *store.Store, m map[string]uint64) {
	t.Helper()
	if err := s.Save(context.Background(), m); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func load(t *testing.T, s *store.Store) map[string]uint64 {
	t.Helper()
	m, err := s.Load(context.Background())
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
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatalf("parse database URL: %v", err)
	}
	p, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatalf("start fault proxy: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	pool := db.NewPool(t, func(c *pgxpool.Config) {
		c.ConnConfig.Host = "127.0.0.1"
		c.ConnConfig.Port = p.Port()
		if configure != nil {
			configure(c)
		}
	})
	return pool, p
}

// countRows counts the journal rows of pid, deleted ones included.
func countRows(t *testing.T, pool *pgxpool.Pool, pid string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM journal WHERE persistence_id = $1`, pid).Scan(&n); err != nil {
		t.Fatalf("count rows of %q: %v", pid, err)
	}
	return n
}

// countAll counts every journal row.
func countAll(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM journal`).Scan(&n); err != nil {
		t.Fatalf("count journal rows: %v", err)
	}
	return n
}

// isFenced reports whether err is a fencing error.
func isFenced(err error) bool { return errors.Is(err, store.ErrFenced) }

var errInjected = errors.New("injected fault")

// faultyJournal injects faults into a journal. Each counter, while
// positive, makes that many calls fail.
type faultyJournal struct {
	journal.Journal
	failBeforeAppend atomic.Int32 // Append writes nothing and fails
	failReplay       atomic.Int32 // Replay (the store's read-back) fails
}

func take(c *atomic.Int32) bool {
	for {
		n := c.Load()
		if n <= 0 {
			return false
		}
		if c.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (f *faultyJournal) Append(ctx context.Context, events ...journal.Event) error {
	if take(&f.failBeforeAppend) {
		return fmt.Errorf("append: dial: connection refused: %w", errInjected)
	}
	return f.Journal.Append(ctx, events...)
}

// AppendNext forwards to the wrapped journal's conditional append when it
// has one (so that the store takes the same path as on the bare journal),
// and to Append otherwise.
func (f *faultyJournal) AppendNext(ctx context.Context, ev journal.Event) error {
	if take(&f.failBeforeAppend) {
		return fmt.Errorf("append: dial: connection refused: %w", errInjected)
	}
	if na, ok := f.Journal.(interface {
		AppendNext(context.Context, journal.Event) error
	}); ok {
		return na.AppendNext(ctx, ev)
	}
	return f.Journal.Append(ctx, ev)
}

func (f *faultyJournal) Replay(ctx context.Context, pid string, from, to, max uint64) iter.Seq2[journal.Event, error] {
	if take(&f.failReplay) {
		return func(yield func(journal.Event, error) bool) { yield(journal.Event{}, errInjected) }
	}
	return f.Journal.Replay(ctx, pid, from, to, max)
}

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
