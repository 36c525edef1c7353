package crash_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// EnvCycles sets the number of kill-and-restart cycles.
const EnvCycles = "OFFSETSTORE_CRASH_CYCLES"

// relay saves in a loop on its own pool, in a store mode, and keeps what
// was acknowledged.
type relay struct {
	j      *pgjournal.Journal
	mode   rel.Mode
	outbox string

	mu      sync.Mutex
	acked   map[string]uint64 // the merge of every save that returned nil
	ok      int
	failed  int
	adopted int64
	fenced  []error // spurious ErrFenced: there is no other writer
	reopens int
	// back is set to the time of the first save acknowledged after
	// markRestarted.
	restarted, back time.Time
}

// markRestarted notes that the server is up again.
func (r *relay) markRestarted() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarted, r.back = time.Now(), time.Time{}
}

// recovered returns how long after markRestarted the relay saved again,
// and false while it has not.
func (r *relay) recovered() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.back.IsZero() {
		return 0, false
	}
	return r.back.Sub(r.restarted), true
}

func (r *relay) snapshot() (map[string]uint64, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.acked), r.ok
}

// run saves until ctx is done. Each save raises "all" and one of 64 other
// keys to the next value of a counter. After ErrFenced, which must not
// happen, it records the error and reopens the outbox so that the test
// can go on measuring.
func (r *relay) run(ctx context.Context, s *store.Store) {
	for n := uint64(1); ctx.Err() == nil; n++ {
		m := map[string]uint64{"all": n, fmt.Sprintf("k%02d", n%64): n}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.Save(sctx, m)
		cancel()
		r.mu.Lock()
		switch {
		case err == nil:
			r.ok++
			if !r.restarted.IsZero() && r.back.IsZero() {
				r.back = time.Now()
			}
			for k, v := range m {
				r.acked[k] = max(r.acked[k], v)
			}
		case errors.Is(err, store.ErrFenced):
			r.fenced = append(r.fenced, err)
		default:
			r.failed++
		}
		r.mu.Unlock()
		if err == nil {
			continue
		}
		if errors.Is(err, store.ErrFenced) {
			adopted := s.Stats().Adopted
			for ctx.Err() == nil {
				if s2, err := store.Open(ctx, r.j, r.outbox, r.mode.Options...); err == nil {
					s = s2
					r.mu.Lock()
					r.adopted += adopted
					r.reopens++
					r.mu.Unlock()
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		time.Sleep(5 * time.Millisecond) // the server may be down: do not spin
	}
	r.mu.Lock()
	r.adopted += s.Stats().Adopted
	r.mu.Unlock()
}

// TestCrashRestart kills PostgreSQL (SIGKILL of the container, then a
// start with crash recovery) at random moments while a relay saves in a
// loop. After every restart, the offsets a fresh store loads on a fresh
// pool are at least those of every save that returned nil, key by key.
// The relay sees errors while the server is down, then succeeds again by
// itself: no ErrFenced, no reopening needed.
//
// It must not run beside any other test of its binary: Restart takes the
// shared server down.
func TestCrashRestart(t *testing.T) {
	cycles := rel.EnvInt(t, EnvCycles, 20)
	db := testdb.New(t)
	if !db.Server.CanRestart() {
		t.Skipf("crash test: the server of $%s cannot be killed: %v", testdb.EnvDatabaseURL, testdb.ErrNoContainer)
	}
	ctx := context.Background()
	// One relay per store mode, on outboxes of their own, through the same
	// kills: in incremental mode they fall on deltas and compactions.
	var relays []*relay
	var wg sync.WaitGroup
	rctx, stop := context.WithCancel(ctx)
	for _, m := range rel.Modes {
		r := &relay{j: pgjournal.New(db.NewPool(t, nil)), mode: m, outbox: "crash-" + strings.ToLower(m.Name), acked: map[string]uint64{}}
		s, err := store.Open(ctx, r.j, r.outbox, m.Options...)
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, r)
		wg.Go(func() { r.run(rctx, s) })
	}
	stopRelays := sync.OnceFunc(func() { stop(); wg.Wait() })
	t.Cleanup(stopRelays)

	var restarts, recoveries time.Duration
	lostTotal := map[string]int{}
	for cycle := 1; cycle <= cycles; cycle++ {
		time.Sleep(time.Duration(50+rand.IntN(450)) * time.Millisecond)
		var before []int
		for _, r := range relays {
			_, n := r.snapshot()
			before = append(before, n)
		}
		t0 := time.Now()
		kctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := db.Server.Restart(kctx, true)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: restart: %v", cycle, err)
		}
		took := time.Since(t0)
		restarts += took
		for _, r := range relays {
			r.markRestarted()
		}
		for _, r := range relays {
			// Everything acknowledged so far, the saves before the kill
			// included, must be in what a restarted relay loads.
			acked, _ := r.snapshot()
			got := reloadFresh(t, db, r)
			if lost := lostKeys(got, acked); len(lost) > 0 {
				lostTotal[r.mode.Name] += len(lost)
				t.Errorf("cycle %d, %s: %d acknowledged offsets lost after the crash: %v", cycle, r.mode.Name, len(lost), lost)
			}
		}
		// The relays recover by themselves.
		var back time.Duration
		for _, r := range relays {
			for t1 := time.Now(); ; {
				b, ok := r.recovered()
				if ok {
					back = max(back, b)
					break
				}
				if time.Since(t1) > 30*time.Second {
					t.Fatalf("cycle %d, %s: the relay has not saved since the restart (%v ago)", cycle, r.mode.Name, time.Since(t1))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		recoveries += back
		t.Logf("cycle %d: killed after %v acknowledged saves; restart %v; relays saving again %v later",
			cycle, before, took.Round(time.Millisecond), back.Round(time.Millisecond))
	}
	stopRelays()
	for _, r := range relays {
		acked, _ := r.snapshot()
		got := reloadFresh(t, db, r)
		if lost := lostKeys(got, acked); len(lost) > 0 {
			lostTotal[r.mode.Name] += len(lost)
			t.Errorf("at the end, %s: %d acknowledged offsets lost: %v", r.mode.Name, len(lost), lost)
		}
		for _, err := range r.fenced {
			t.Errorf("%s: spurious ErrFenced for the only writer (its own earlier write, see reliability.TestLostAckThenFailedRetry): %v", r.mode.Name, err)
		}
		t.Logf("%s: %d cycles: %d saves acknowledged, %d failed, %d adopted, %d spurious fences, %d reopens",
			r.mode.Name, cycles, r.ok, r.failed, r.adopted, len(r.fenced), r.reopens)
		prefix := "crash_"
		if r.mode.Options != nil {
			prefix += strings.ToLower(r.mode.Name) + "_"
		}
		rel.Figure(t, prefix+"saves_acknowledged", float64(r.ok), "saves")
		rel.Figure(t, prefix+"acknowledged_lost", float64(lostTotal[r.mode.Name]), "offsets")
		rel.Figure(t, prefix+"saves_failed", float64(r.failed), "saves")
		rel.Figure(t, prefix+"adopted", float64(r.adopted), "writes")
		rel.Figure(t, prefix+"spurious_fenced", float64(len(r.fenced)), "errors")
	}
	rel.Figure(t, "crash_cycles", float64(cycles), "cycles")
	rel.Figure(t, "crash_restart_mean", rel.Millis(restarts/time.Duration(cycles)), "ms")
	rel.Figure(t, "crash_recovery_mean", rel.Millis(recoveries/time.Duration(cycles)), "ms")
}

// reloadFresh opens the outbox on a new pool and returns its offsets.
func reloadFresh(t *testing.T, db *testdb.DB, r *relay) map[string]uint64 {
	t.Helper()
	pool := db.NewPool(t, func(c *pgxpool.Config) { c.MaxConns = 1 })
	defer pool.Close()
	s, err := store.Open(context.Background(), pgjournal.New(pool), r.outbox)
	if err != nil {
		t.Fatalf("reopen after the restart: %v", err)
	}
	m, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lostKeys(got, acked map[string]uint64) []string {
	var out []string
	for k, v := range acked {
		if got[k] < v {
			out = append(out, fmt.Sprintf("%s: acked %d, found %d", k, v, got[k]))
		}
	}
	return out
}
