package store_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// TestCommitterRandomCrashesOnMemory completes 1 000 000 tracked events,
// 1 000 per key over 1 000 keys, acknowledged in random order, with random
// crashes. After each crash the store is opened again on the journal and
// no saved offset may have passed an event that was not marked; after the
// final clean Close every event is saved.
func TestCommitterRandomCrashesOnMemory(t *testing.T) {
	t.Parallel()
	keys, events := 1000, 1000
	if testing.Short() {
		keys, events = 200, 200
	}
	runCrashes(t, journal.NewMemory(), crashConfig{keys: keys, events: events, window: 5000, crashes: 20, seed: 1})
}

// TestCommitterRandomCrashesOnPostgres is the same on PostgreSQL, smaller.
func TestCommitterRandomCrashesOnPostgres(t *testing.T) {
	t.Parallel()
	runCrashes(t, postgresJournal(t), crashConfig{keys: 100, events: 200, window: 300, crashes: 8, seed: 2})
}

type crashConfig struct {
	keys, events int
	window       int // events in flight at most
	crashes      int // expected number of crashes over the run
	seed         uint64
}

// inflight is an event published and not yet acknowledged.
type inflight struct {
	key int
	seq uint64
}

func runCrashes(t *testing.T, base journal.Journal, cfg crashConfig) {
	seed2 := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(cfg.seed, seed2))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed: %d, %d", cfg.seed, seed2)
		}
	})
	const outbox = "crashes"
	names := make([]string, cfg.keys)
	for k := range names {
		names[k] = fmt.Sprintf("aggregate-%04d", k)
	}
	// done[k][seq]: seq of key k was marked by the current run or, for
	// seqs at or below the saved offset, by an earlier one.
	done := make([][]bool, cfg.keys)
	for k := range done {
		done[k] = make([]bool, cfg.events+1)
	}
	next := make([]uint64, cfg.keys)  // next seq to publish
	saved := make([]uint64, cfg.keys) // offsets found at the last check
	var (
		left      []int // keys with events left to publish
		flying    []inflight
		committer *store.Committer
		cut       *flaky
		s         *store.Store
	)
	start := func() {
		var j journal.Journal
		j, cut = newFlaky(base)
		s = open(t, j, outbox)
		every := 1 + rng.IntN(2000)
		interval := time.Duration(1+rng.IntN(10)) * time.Millisecond
		committer = newCommitter(t, s, store.WithCommitEvery(every), store.WithCommitInterval(interval))
		got := load(t, s)
		left = left[:0]
		flying = flying[:0]
		for k, name := range names {
			off := got[name]
			if off < saved[k] {
				t.Fatalf("key %s went back from %d to %d", name, saved[k], off)
			}
			for seq := uint64(1); seq <= off; seq++ {
				if !done[k][seq] {
					t.Fatalf("key %s saved at %d, but event %d was never marked", name, off, seq)
				}
			}
			for seq := off + 1; seq <= uint64(cfg.events); seq++ {
				done[k][seq] = false // to be published again
			}
			saved[k], next[k] = off, off+1
			if next[k] <= uint64(cfg.events) {
				left = append(left, k)
			}
		}
	}
	start()
	crashOdds := 2 * cfg.keys * cfg.events / max(cfg.crashes, 1)
	crashes, ops, marks := 0, 0, 0
	for len(left) > 0 || len(flying) > 0 {
		ops++
		if rng.IntN(crashOdds) == 0 {
			// The process dies: the journal refuses what the old
			// committer would still write, and it is dropped unclosed.
			cut.cut()
			committer, s = nil, nil
			crashes++
			if crashes%4 == 0 {
				runtime.GC() // let dropped committers stop
			}
			start()
			continue
		}
		if len(left) > 0 && (len(flying) < cfg.window && rng.IntN(2) == 0 || len(flying) == 0) {
			i := rng.IntN(len(left))
			k := left[i]
			if err := committer.Track(names[k], next[k]); err != nil {
				t.Fatalf("Track: %v", err)
			}
			flying = append(flying, inflight{k, next[k]})
			if next[k]++; next[k] > uint64(cfg.events) {
				left[i] = left[len(left)-1]
				left = left[:len(left)-1]
			}
			continue
		}
		i := rng.IntN(len(flying))
		ev := flying[i]
		flying[i] = flying[len(flying)-1]
		flying = flying[:len(flying)-1]
		if err := committer.Mark(names[ev.key], ev.seq); err != nil {
			t.Fatalf("Mark: %v", err)
		}
		done[ev.key][ev.seq] = true
		marks++
	}
	if err := committer.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := load(t, open(t, base, outbox))
	for _, name := range names {
		if got[name] != uint64(cfg.events) {
			t.Fatalf("after Close, key %s is saved at %d, want %d", name, got[name], cfg.events)
		}
	}
	if crashes == 0 {
		t.Fatal("no crash happened")
	}
	t.Logf("%d events, %d marks, %d crashes, %d steps", cfg.keys*cfg.events, marks, crashes, ops)
}
