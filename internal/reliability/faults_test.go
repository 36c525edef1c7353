package reliability_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/internal/faultproxy"
	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// loopResult is what a saving loop saw.
type loopResult struct {
	acked     map[string]uint64 // the merge of every save that returned nil
	ok, fails int
	fenced    []error // ErrFenced errors: there must be none
	maxRun    int     // the longest run of consecutive failures
}

// saveLoop saves in a loop until ctx is done: each save raises "all" and
// one of 16 other keys to the next value of a counter. Every save has its
// own deadline, so that a fault cannot hang it.
func saveLoop(ctx context.Context, s *store.Store) loopResult {
	r := loopResult{acked: map[string]uint64{}}
	run := 0
	for n := uint64(1); ctx.Err() == nil; n++ {
		m := map[string]uint64{"all": n, fmt.Sprintf("k%02d", n%16): n}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Save(sctx, m)
		cancel()
		if err == nil {
			r.ok++
			run = 0
			merge(r.acked, m)
			continue
		}
		r.fails++
		run++
		r.maxRun = max(r.maxRun, run)
		if isFenced(err) {
			r.fenced = append(r.fenced, err)
			return r // fenced for good: no point going on
		}
		time.Sleep(2 * time.Millisecond)
	}
	return r
}

// startLoop runs saveLoop in a goroutine; stop ends it and returns its
// result.
func startLoop(s *store.Store) (stop func() loopResult) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan loopResult, 1)
	go func() { done <- saveLoop(ctx, s) }()
	return func() loopResult {
		cancel()
		return <-done
	}
}

// checkRecovered asserts what every fault test ends with: no spurious
// fencing, a save that succeeds again, and a reload that holds every
// acknowledged save and equals what the store says is durable.
func checkRecovered(t *testing.T, db *testdb.DB, s *store.Store, r loopResult) {
	t.Helper()
	for _, err := range r.fenced {
		t.Fatalf("spurious ErrFenced for the only writer (its own earlier write, see TestLostAckThenFailedRetry): %v", err)
	}
	final := map[string]uint64{"final": 1}
	if n, err := within(10*time.Second, func() error { return s.Save(context.Background(), final) }); err != nil {
		t.Fatalf("no save succeeded after the faults (%d tries): %v", n, err)
	}
	merge(r.acked, final)
	got := reload(t, db, s.Outbox())
	if l := lost(got, r.acked); len(l) > 0 {
		t.Fatalf("%d acknowledged offsets lost: %v", len(l), l)
	}
	wantOffsets(t, got, load(t, s))
}

// TestTerminatedBackend: pg_terminate_backend cuts the store's sessions.
// The save on the dead connection may fail; the next one succeeds, and no
// acknowledged save is lost.
func TestTerminatedBackend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Idle", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		// One connection, so that the one save that can meet the dead
		// session is the next one.
		pool := db.NewPool(t, func(c *pgxpool.Config) { c.MaxConns = 1 })
		s := open(t, pgjournal.New(pool), "terminated")
		save(t, s, map[string]uint64{"a": 1})
		if n, err := db.TerminateBackends(ctx); err != nil || n < 1 {
			t.Fatalf("TerminateBackends = %d, %v; want at least one session ended", n, err)
		}
		err1 := s.Save(ctx, map[string]uint64{"a": 2})
		if isFenced(err1) {
			t.Fatalf("first save after the termination: spurious ErrFenced: %v", err1)
		}
		t.Logf("first save after the termination: %v", err1)
		save(t, s, map[string]uint64{"a": 3})
		wantOffsets(t, reload(t, db, "terminated"), map[string]uint64{"a": 3})
	})

	t.Run("DuringSaves", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		pool := db.NewPool(t, nil)
		s := open(t, pgjournal.New(pool), "terminated-loop")
		stop := startLoop(s)
		killed := 0
		for range 10 {
			time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
			n, err := db.TerminateBackends(ctx)
			if err != nil {
				stop()
				t.Fatal(err)
			}
			killed += n
		}
		time.Sleep(50 * time.Millisecond)
		r := stop()
		t.Logf("saves: %d acknowledged, %d failed (longest failing run %d); %d sessions terminated", r.ok, r.fails, r.maxRun, killed)
		if killed == 0 {
			t.Fatal("no session was terminated: the fault did not happen")
		}
		// Every failed save discards at least the dead connection it
		// used, so a termination can fail at most as many saves in a row
		// as the pool holds connections (two terminations may overlap).
		if limit := 2 * int(pool.Config().MaxConns); r.maxRun > limit {
			t.Errorf("%d saves in a row failed after a termination, want at most %d: the pool does not recover", r.maxRun, limit)
		}
		checkRecovered(t, db, s, r)
		rel.Figure(t, "terminate_sessions_killed", float64(killed), "sessions")
		rel.Figure(t, "terminate_saves_failed", float64(r.fails), "saves")
		rel.Figure(t, "terminate_saves_acknowledged", float64(r.ok), "saves")
		rel.Figure(t, "terminate_longest_failing_run", float64(r.maxRun), "saves")
	})
}

// TestProxyLatency: with latency on the wire, saves still succeed, only
// slower.
func TestProxyLatency(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	pool, proxy := viaProxy(t, db, nil)
	s := open(t, pgjournal.New(pool), "slow")
	const n = 20
	measure := func() time.Duration {
		start := time.Now()
		for i := range n {
			save(t, s, map[string]uint64{"a": s.SequenceNr() + 1, fmt.Sprint("k", i): 1})
		}
		return time.Since(start) / n
	}
	measure() // warm the pool and the statement cache
	fast := measure()
	const latency = 10 * time.Millisecond
	proxy.SetLatency(latency)
	slow := measure()
	proxy.SetLatency(0)
	t.Logf("mean save: %v direct through the proxy, %v with %v added per chunk", fast, slow, latency)
	// A save is a request and a reply: at least two delayed chunks.
	if slow < 2*latency {
		t.Fatalf("mean save with %v latency = %v, want at least %v: the latency was not applied", latency, slow, 2*latency)
	}
	wantOffsets(t, reload(t, db, "slow"), load(t, s))
	rel.Figure(t, "proxy_save_mean", rel.Millis(fast), "ms")
	rel.Figure(t, "proxy_save_mean_latency_10ms", rel.Millis(slow), "ms")
}

// TestProxyResets closes every connection of the store's pool, at random
// moments, while it saves: saves fail, then succeed again; no ErrFenced;
// no acknowledged save lost. With latency, a reply waits in the proxy and
// the reset often falls between the commit and the acknowledgement.
func TestProxyResets(t *testing.T) {
	t.Parallel()
	d := rel.EnvDuration(t, envResetDuration, 2*time.Second)
	for _, latency := range []time.Duration{0, 3 * time.Millisecond} {
		t.Run(fmt.Sprintf("Latency%v", latency), func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			pool, proxy := viaProxy(t, db, nil)
			proxy.SetLatency(latency)
			s := open(t, pgjournal.New(pool), "reset")
			stop := startLoop(s)
			resets, hits := 0, 0
			for end := time.Now().Add(d); time.Now().Before(end); {
				// Long enough between resets for the pool to reconnect (a
				// SCRAM handshake is slow under the race detector).
				time.Sleep(time.Duration(10+rand.IntN(140)) * time.Millisecond)
				resets++
				if proxy.ResetAll() > 0 {
					hits++
				}
			}
			r := stop()
			t.Logf("%d resets (%d hit a connection); saves: %d acknowledged, %d failed; adopted %d", resets, hits, r.ok, r.fails, s.Stats().Adopted)
			if r.fails == 0 {
				t.Fatal("no save failed: the resets did not hit any")
			}
			checkRecovered(t, db, s, r)
			name := fmt.Sprintf("reset_latency%dms", latency.Milliseconds())
			rel.Figure(t, name+"_resets", float64(hits), "resets")
			rel.Figure(t, name+"_saves_acknowledged", float64(r.ok), "saves")
			rel.Figure(t, name+"_saves_failed", float64(r.fails), "saves")
			rel.Figure(t, name+"_adopted", float64(s.Stats().Adopted), "writes")
		})
	}
}

// TestDroppedReplyAfterCommit drops the reply to the store's INSERT after
// the server committed it, again and again. Every time the store must
// adopt its own write — at once, by reading it back, or at the next save
// when the read-back fails too — and never report ErrFenced or lose it.
func TestDroppedReplyAfterCommit(t *testing.T) {
	t.Parallel()
	rel.ForEachMode(t, true, func(t *testing.T, m rel.Mode) {
		db := testdb.New(t)
		pool, proxy := viaProxy(t, db, nil)
		runDroppedReply(t, droppedReply{
			mode:    m,
			rounds:  rel.EnvInt(t, envDropRounds, 20),
			journal: pgjournal.New(pool),
			proxy:   proxy,
			reload:  func(outbox string) map[string]uint64 { return reload(t, db, outbox) },
		})
	})
}

// droppedReply is where runDroppedReply runs: a journal whose connections
// pass through proxy, and a fresh reload of an outbox.
type droppedReply struct {
	mode    rel.Mode
	figure  string // prefix of the figures' names
	rounds  int
	journal journal.Journal
	proxy   *faultproxy.Proxy
	reload  func(outbox string) map[string]uint64
}

func runDroppedReply(t *testing.T, d droppedReply) {
	ctx := context.Background()
	rounds, proxy := d.rounds, d.proxy
	writer := fmt.Sprintf("dropped-reply-writer-%d", rand.Uint64())
	fj := faultjournal.New(d.journal)
	s := open(t, fj, "dropped", d.mode.With(store.WithWriterID(writer))...)
	save(t, s, map[string]uint64{"a": 1})
	acked := map[string]uint64{"a": 1}
	var atOnce, atNext int
	for i := range rounds {
		adopted, dropped := s.Stats().Adopted, proxy.Dropped.Load()
		m := map[string]uint64{"a": uint64(i) + 2, fmt.Sprint("round-", i): 1}
		proxy.DropReplyAfter([]byte(writer))
		if i%2 == 0 {
			// The store reads its write back on a fresh connection.
			if err := s.Save(ctx, m); err != nil {
				t.Fatalf("round %d: Save with a dropped reply = %v, want nil (adopted at once)", i, err)
			}
			atOnce++
		} else {
			// The read-back fails too: the save reports an error, and the
			// next one finds the row, adopts it and writes on top.
			fj.FailLast.Store(1)
			err := s.Save(ctx, m)
			if err == nil || isFenced(err) {
				t.Fatalf("round %d: Save with a dropped reply and a failed read-back = %v, want a plain error", i, err)
			}
			if got := load(t, s)["a"]; got != uint64(i)+1 {
				t.Fatalf("round %d: Load shows a = %d before the write is confirmed, want %d", i, got, i+1)
			}
			next := map[string]uint64{fmt.Sprint("after-", i): 1}
			if err := s.Save(ctx, next); err != nil {
				t.Fatalf("round %d: next Save = %v, want nil (adopting the earlier write)", i, err)
			}
			merge(acked, next)
			atNext++
		}
		merge(acked, m)
		if got := proxy.Dropped.Load() - dropped; got != 1 || proxy.Armed() {
			t.Fatalf("round %d: %d replies dropped (armed %v): the fault did not happen", i, got, proxy.Armed())
		}
		if got := s.Stats().Adopted - adopted; got != 1 {
			t.Fatalf("round %d: %d writes adopted, want 1", i, got)
		}
	}
	wantOffsets(t, load(t, s), acked)
	wantOffsets(t, d.reload("dropped"), acked)
	rel.Figure(t, d.figure+"dropped_reply_rounds", float64(rounds), "rounds")
	rel.Figure(t, d.figure+"dropped_reply_adopted_at_once", float64(atOnce), "writes")
	rel.Figure(t, d.figure+"dropped_reply_adopted_at_next_save", float64(atNext), "writes")
}

// TestLostAckThenFailedRetry: a write commits but its reply is lost and
// the read-back fails (the server went away); the next save cannot reach
// the server at all. When the server is back, the third save must find
// the first write, recognise it as the store's own and adopt it. It must
// not report ErrFenced: no other writer exists.
func TestLostAckThenFailedRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	pool, proxy := viaProxy(t, db, nil)
	writer := fmt.Sprintf("lost-then-failed-%d", rand.Uint64())
	fj := faultjournal.New(pgjournal.New(pool))
	s := open(t, fj, "lost-then-failed", store.WithWriterID(writer))
	save(t, s, map[string]uint64{"a": 1})

	// 1. Committed, reply dropped, read-back fails.
	proxy.DropReplyAfter([]byte(writer))
	fj.FailLast.Store(1)
	if err := s.Save(ctx, map[string]uint64{"a": 2}); err == nil || isFenced(err) {
		t.Fatalf("save 1 = %v, want a plain error", err)
	}
	if proxy.Dropped.Load() != 1 {
		t.Fatal("the reply was not dropped: the fault did not happen")
	}
	// 2. The server cannot be reached: nothing is written.
	fj.FailBeforeCommit.Store(1)
	fj.FailLast.Store(1)
	if err := s.Save(ctx, map[string]uint64{"b": 1}); err == nil || isFenced(err) {
		t.Fatalf("save 2 = %v, want a plain error", err)
	}
	// 3. The server is back.
	err := s.Save(ctx, map[string]uint64{"c": 1})
	if isFenced(err) {
		t.Fatalf("save 3 = %v\nBUG: the store forgot its committed write 1 when write 2 failed, and now takes its own row for another writer's", err)
	}
	if err != nil {
		t.Fatalf("save 3 = %v, want nil", err)
	}
	want := map[string]uint64{"a": 2, "c": 1}
	if got := load(t, s); got["b"] == 1 {
		want["b"] = 1 // a retry of save 2's change is allowed, not required
	}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, reload(t, db, "lost-then-failed"), want)
}
