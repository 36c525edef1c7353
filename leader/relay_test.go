package leader_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
	"github.com/outboxkit/offsetstore/store"
)

// EnvLeaderDuration sets how long TestCompetingRelays runs (a Go
// duration); the run is OFFSETSTORE_LEADER_DURATION=60s.
const EnvLeaderDuration = "OFFSETSTORE_LEADER_DURATION"

// world is a relay simulation: relays publish the events 1, 2, 3 … of one
// source stream, resuming from the stored offset + 1, saving the offset
// after each publication.
type world struct {
	outbox string

	mu        sync.Mutex
	published map[uint64]int // seq → times published
	acked     uint64         // highest seq whose Save returned nil

	active, maxActive atomic.Int32
	overlaps          atomic.Int64 // times a relay started publishing while another still did
	terminated        atomic.Int64 // leader sessions ended by pg_terminate_backend
	lostPIDs          sync.Map     // pid → true: leases lost (not released) while leading
	terminatedPIDs    sync.Map     // pid → true: sessions the chaos goroutine ends
	takeovers         atomic.Int64
	fencings          atomic.Int64
	leaderPID         atomic.Uint32
}

func newWorld() *world { return &world{outbox: "relay", published: map[uint64]int{}} }

// relay competes for the outbox until ctx ends, holding each lease for
// hold() unless it is lost first.
func (w *world) relay(ctx context.Context, pool *pgxpool.Pool, hold func() time.Duration) error {
	failures := 0
	for ctx.Err() == nil {
		l, err := leader.Acquire(ctx, pool, w.outbox, fast)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A relay retries a connection that could not be made (the
			// machine is loaded: a dial may time out); anything else, or
			// a connection that keeps failing, ends the test.
			var ce *pgconn.ConnectError
			if errors.As(err, &ce) && failures < 20 {
				failures++
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		failures = 0
		w.takeovers.Add(1)
		w.leaderPID.Store(l.BackendPID())
		if err := w.lead(l, pool, hold()); err != nil {
			return err
		}
		select {
		case <-l.Lost():
			w.lostPIDs.Store(l.BackendPID(), true)
		default:
		}
		if err := l.Release(context.WithoutCancel(ctx)); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) lead(l *leader.Lease, pool *pgxpool.Pool, hold time.Duration) error {
	ctx := l.Context()
	st, err := store.Open(ctx, pgjournal.New(pool), w.outbox)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	offsets, err := st.Load(ctx)
	if err != nil {
		return err
	}
	if n := w.active.Add(1); n > 1 {
		w.overlaps.Add(1)
		if n > w.maxActive.Load() {
			w.maxActive.Store(n)
		}
	} else if n > w.maxActive.Load() {
		w.maxActive.Store(n)
	}
	defer w.active.Add(-1) // before Release: publishing has stopped
	next := offsets["src"] + 1
	for end := time.Now().Add(hold); time.Now().Before(end) && ctx.Err() == nil; next++ {
		w.mu.Lock()
		w.published[next]++
		w.mu.Unlock()
		err := st.Save(ctx, map[string]uint64{"src": next})
		switch {
		case errors.Is(err, store.ErrFenced):
			w.fencings.Add(1)
			return nil
		case err != nil && ctx.Err() != nil:
			return nil // lost or released mid-save: the next leader reads what was committed
		case err != nil:
			return err
		}
		w.mu.Lock()
		w.acked = max(w.acked, next)
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	return nil
}

// check verifies that no acknowledged save was lost, every event up to
// the stored offset was published, re-publications and fencings are at
// most one per takeover, and that at most one relay published at a time,
// but for an overlap after a terminated session: the server frees the lock
// as the old leader's session ends, the old leader learns it from the same
// event, and a save it had in flight on another connection may still
// land (the store fences one of the two). So overlaps ≤ terminations.
func (w *world) check(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	st, err := store.Open(t.Context(), pgjournal.New(pool), w.outbox)
	if err != nil {
		t.Fatal(err)
	}
	offsets, err := st.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	final := offsets["src"]
	w.mu.Lock()
	defer w.mu.Unlock()
	var twice int
	for seq := uint64(1); seq <= final; seq++ {
		switch n := w.published[seq]; {
		case n == 0:
			t.Fatalf("event %d is below the stored offset %d but was never published", seq, final)
		case n > 1:
			twice += n - 1
		}
	}
	takeovers, fencings := w.takeovers.Load(), w.fencings.Load()
	// A lease the leader lost by itself (a ping over its budget on a
	// loaded machine: the lease closes its session) frees the lock as a
	// termination does.
	var selfLost int64
	w.lostPIDs.Range(func(pid, _ any) bool {
		if _, ok := w.terminatedPIDs.Load(pid); !ok {
			selfLost++
		}
		return true
	})
	t.Logf("stored offset %d, highest acknowledged %d, takeovers %d, fencings %d, re-published %d, leaders terminated %d, leases lost by the leader itself %d, overlaps %d, most relays active at once %d",
		final, w.acked, takeovers, fencings, twice, w.terminated.Load(), selfLost, w.overlaps.Load(), w.maxActive.Load())
	switch {
	case final < w.acked:
		t.Fatalf("lost work: the stored offset is %d, but a save of %d was acknowledged", final, w.acked)
	case fencings > takeovers:
		t.Fatalf("ping-pong: %d fencings for %d takeovers", fencings, takeovers)
	case int64(twice) > takeovers:
		t.Fatalf("%d events re-published for %d takeovers, want at most one per takeover", twice, takeovers)
	case w.maxActive.Load() > 2 || w.overlaps.Load() > w.terminated.Load()+selfLost:
		t.Fatalf("%d times two relays published at once (at most %d), for %d terminated leaders and %d leases lost by the leader itself", w.overlaps.Load(), w.maxActive.Load(), w.terminated.Load(), selfLost)
	case takeovers < 2:
		t.Fatalf("only %d takeovers: the run proves nothing", takeovers)
	}
}

// Three relays compete for one outbox for OFFSETSTORE_LEADER_DURATION
// (default 20s). Leaders hand over by Release after a random hold, and a
// chaos goroutine terminates the leader's session every ~1.5s.
func TestCompetingRelays(t *testing.T) {
	t.Parallel()
	duration := 20 * time.Second
	if s := os.Getenv(EnvLeaderDuration); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", EnvLeaderDuration, err)
		}
		duration = d
	}
	if testing.Short() {
		t.Skip("runs for " + duration.String())
	}
	db := testdb.New(t)
	w := newWorld()
	ctx, cancel := context.WithTimeout(t.Context(), duration)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		pool := db.NewPool(t, nil)
		wg.Go(func() {
			errs <- w.relay(ctx, pool, func() time.Duration { return time.Duration(200+rand.IntN(600)) * time.Millisecond })
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(1000+rand.IntN(1000)) * time.Millisecond):
			}
			if pid := w.leaderPID.Load(); pid != 0 {
				w.terminatedPIDs.Store(pid, true)
				var ok bool
				if err := db.Pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)).Scan(&ok); err == nil && ok {
					w.terminated.Add(1)
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
	}
	t.Logf("ran %v", duration)
	w.check(t, db.Pool)
}
