package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// TestLoad runs 64 relays, one outbox of 1 000 keys each, saving as fast
// as they can on one pool for a bounded time. No save may fail; the
// figures are the latency of Save and the throughput.
//
// It does not call t.Parallel, so that its figures are not taken while
// the other tests of the package run.
func TestLoad(t *testing.T) {
	const (
		outboxes = 64
		keys     = 1000
		changed  = 10 // keys raised per save, as a relay that published a few events
	)
	d := rel.EnvDuration(t, envLoadDuration, 8*time.Second)
	db := testdb.New(t)
	pool := db.NewPool(t, func(c *pgxpool.Config) { c.MaxConns = outboxes })
	j := pgjournal.New(pool)
	ctx := context.Background()

	stores := make([]*store.Store, outboxes)
	for i := range stores {
		stores[i] = open(t, j, fmt.Sprintf("load-%02d", i))
		first := make(map[string]uint64, keys)
		for k := range keys {
			first[fmt.Sprintf("order-%06d", k)] = 1
		}
		save(t, stores[i], first)
	}

	type result struct {
		lat  []time.Duration
		errs []error
	}
	results := make([]result, outboxes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			r := &results[i]
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			next := map[string]uint64{}
			<-start
			for end := time.Now().Add(d); time.Now().Before(end); {
				clear(next)
				cur, _ := s.Load(ctx)
				for range changed {
					k := fmt.Sprintf("order-%06d", rng.IntN(keys))
					next[k] = cur[k] + 1
				}
				t0 := time.Now()
				err := s.Save(ctx, next)
				r.lat = append(r.lat, time.Since(t0))
				if err != nil {
					r.errs = append(r.errs, err)
					if len(r.errs) > 10 {
						return
					}
				}
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)

	var lat []time.Duration
	var errs []error
	for _, r := range results {
		lat = append(lat, r.lat...)
		errs = append(errs, r.errs...)
	}
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("save under load: %v", err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d saves failed under load", len(errs), len(lat))
	}
	for i, s := range stores {
		if i%8 == 0 { // a sample: reloading all 64 adds nothing
			wantOffsets(t, reload(t, db, s.Outbox()), load(t, s))
		}
		if st := s.Stats(); st.PruneErrors > 0 {
			t.Errorf("%s: %d prunes failed", s.Outbox(), st.PruneErrors)
		}
	}
	var rowsPerOutbox int
	if err := db.Pool.QueryRow(ctx, `SELECT max(n) FROM (SELECT count(*) AS n FROM journal GROUP BY persistence_id) c`).Scan(&rowsPerOutbox); err != nil {
		t.Fatal(err)
	}
	if bound := store.DefaultRetention + store.DefaultPruneInterval; rowsPerOutbox > bound {
		t.Errorf("an outbox holds %d rows after the run, over retention + prune interval = %d", rowsPerOutbox, bound)
	}
	p50, p99 := rel.Percentile(lat, 50), rel.Percentile(lat, 99)
	t.Logf("%d outboxes × %d keys, %v: %d saves, %.0f saves/s, p50 %v, p99 %v, max %v, at most %d rows per outbox",
		outboxes, keys, elapsed.Round(time.Millisecond), len(lat), float64(len(lat))/elapsed.Seconds(), p50, p99, slices.Max(lat), rowsPerOutbox)
	rel.Figure(t, "load_outboxes", outboxes, "outboxes")
	rel.Figure(t, "load_keys_per_outbox", keys, "keys")
	rel.Figure(t, "load_duration", elapsed.Seconds(), "s")
	rel.Figure(t, "load_saves", float64(len(lat)), "saves")
	rel.Figure(t, "load_saves_per_second", float64(len(lat))/elapsed.Seconds(), "saves/s")
	rel.Figure(t, "load_save_p50", rel.Millis(p50), "ms")
	rel.Figure(t, "load_save_p99", rel.Millis(p99), "ms")
	rel.Figure(t, "load_save_errors", float64(len(errs)), "errors")
	rel.Figure(t, "load_max_rows_per_outbox", float64(rowsPerOutbox), "rows")
}

// TestPoolExhausted holds every connection of the store's pool: a Save
// must give up at its context's deadline with an error matching
// context.DeadlineExceeded, write nothing, and succeed once a connection
// is free again.
func TestPoolExhausted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	pool := db.NewPool(t, func(c *pgxpool.Config) { c.MaxConns = 2 })
	s := open(t, pgjournal.New(pool), "exhausted")
	save(t, s, map[string]uint64{"a": 1})

	var held []*pgxpool.Conn
	for range pool.Config().MaxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		held = append(held, c)
	}
	const deadline = 300 * time.Millisecond
	for i := range 3 {
		sctx, cancel := context.WithTimeout(ctx, deadline)
		t0 := time.Now()
		err := s.Save(sctx, map[string]uint64{"a": uint64(i) + 2})
		took := time.Since(t0)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || isFenced(err) {
			t.Fatalf("Save with no free connection = %v, want an error matching context.DeadlineExceeded", err)
		}
		if took < deadline || took > deadline+time.Second {
			t.Fatalf("Save gave up after %v, want about its deadline of %v", took, deadline)
		}
		t.Logf("Save with the pool exhausted: %v after %v", err, took.Round(time.Millisecond))
	}
	if n := countRows(t, db.Pool, s.PersistenceID()); n != 1 {
		t.Fatalf("%d snapshot rows after the failed saves, want 1: something was written", n)
	}
	wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
	for _, c := range held {
		c.Release()
	}
	save(t, s, map[string]uint64{"a": 9})
	wantOffsets(t, reload(t, db, "exhausted"), map[string]uint64{"a": 9})
	if s.SequenceNr() != 2 {
		t.Fatalf("SequenceNr = %d, want 2", s.SequenceNr())
	}
}
