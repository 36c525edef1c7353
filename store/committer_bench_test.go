package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// BenchmarkCommitterMark marks known keys with rising sequence numbers, the
// committer saving in the background with its defaults (goal: at most
// 100 ns/op and 0 allocs/op on one goroutine).
func BenchmarkCommitterMark(b *testing.B) {
	const nkeys = 1024
	setup := func(b *testing.B) *store.Committer {
		s, err := store.Open(b.Context(), journal.NewMemory(), "bench-mark")
		if err != nil {
			b.Fatal(err)
		}
		c, err := store.NewCommitter(s)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := c.Close(context.Background()); err != nil {
				b.Errorf("Close: %v", err)
			}
		})
		return c
	}
	keys := make([]string, 8*nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("order-%07d", i)
	}
	b.Run("goroutines=1", func(b *testing.B) {
		c := setup(b)
		for _, k := range keys[:nkeys] {
			_ = c.Mark(k, 1)
		}
		b.ReportAllocs()
		seq := uint64(1)
		i := 0
		for b.Loop() {
			i++
			if i == nkeys {
				i, seq = 0, seq+1
			}
			if err := c.Mark(keys[i], seq+1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goroutines=8", func(b *testing.B) {
		c := setup(b)
		for _, k := range keys {
			_ = c.Mark(k, 1)
		}
		b.ReportAllocs()
		b.SetParallelism((8 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		var id atomic.Int32
		b.RunParallel(func(pb *testing.PB) {
			own := keys[int(id.Add(1)-1)%8*nkeys:][:nkeys] // each goroutine its own keys
			seq := uint64(1)
			i := 0
			for pb.Next() {
				i++
				if i == nkeys {
					i, seq = 0, seq+1
				}
				if err := c.Mark(own[i], seq+1); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkCommitterRelay runs a relay loop of 1 000 000 events over
// 10 000 keys (round robin, so every save moves every key: the hard case)
// with the committer on PostgreSQL. Each iteration runs twice: once to the
// end and Close, for events/s and saves; once killed at a random point past
// the first quarter (the journal refuses every write from then on and the
// committer is dropped), for the at-least-once window: events marked but
// not saved at the kill, which a restarted relay publishes again.
//
// "sync" marks each event as it is published; "async" tracks each event and
// marks it when a random one of 1 000 in-flight publishes completes.
func BenchmarkCommitterRelay(b *testing.B) {
	const (
		nevents = 1_000_000
		nkeys   = 10_000
	)
	db := testdb.New(b)
	base := pgjournal.New(db.Pool)
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("order-%07d", i)
	}
	type config struct {
		every    int
		interval time.Duration
	}
	run := 0
	for _, mode := range []string{"sync", "async"} {
		for _, cfg := range []config{{store.DefaultCommitEvery, store.DefaultCommitInterval}, {10_000, store.DefaultCommitInterval}, {100_000, 100 * time.Millisecond}} {
			b.Run(fmt.Sprintf("%s/every=%d/interval=%v", mode, cfg.every, cfg.interval), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(uint64(cfg.every), 7))
				// relay publishes events [0, upTo) and returns the
				// committer, its cut switch and the seq last marked per key.
				relay := func(upTo int) (*store.Committer, *flaky, string, []uint64) {
					run++
					outbox := fmt.Sprintf("relay-%d", run)
					j, f := newFlaky(base)
					s, err := store.Open(b.Context(), j, outbox)
					if err != nil {
						b.Fatal(err)
					}
					c, err := store.NewCommitter(s, store.WithCommitEvery(cfg.every), store.WithCommitInterval(cfg.interval))
					if err != nil {
						b.Fatal(err)
					}
					marked := make([]uint64, nkeys)
					var flying [1000]int // event numbers in flight, -1 for none
					for i := range flying {
						flying[i] = -1
					}
					markEvent := func(e int) {
						k, seq := e%nkeys, uint64(e/nkeys+1)
						if err := c.Mark(keys[k], seq); err != nil {
							b.Fatal(err)
						}
						// What a restart will not publish again: the
						// committable offset, as the test knows it.
						if mode == "sync" {
							marked[k] = seq
						}
					}
					for e := range upTo {
						if mode == "sync" {
							markEvent(e)
							continue
						}
						if err := c.Track(keys[e%nkeys], uint64(e/nkeys+1)); err != nil {
							b.Fatal(err)
						}
						slot := rng.IntN(len(flying))
						if old := flying[slot]; old >= 0 {
							markEvent(old)
						}
						flying[slot] = e
					}
					if mode == "async" {
						// Committable per key: below its lowest event in
						// flight, else its last published one.
						for k := range marked {
							marked[k] = uint64(max(0, (upTo-1-k)/nkeys+1))
							if upTo <= k {
								marked[k] = 0
							}
						}
						for _, e := range flying {
							if e >= 0 {
								k, seq := e%nkeys, uint64(e/nkeys+1)
								marked[k] = min(marked[k], seq-1)
							}
						}
					}
					return c, f, outbox, marked
				}
				var (
					elapsed        time.Duration
					saves, windows float64
				)
				for b.Loop() {
					start := time.Now()
					c, _, _, _ := relay(nevents)
					if err := c.Close(b.Context()); err != nil {
						b.Fatal(err)
					}
					elapsed += time.Since(start)
					saves += float64(c.Stats().Saves)

					killAt := nevents/4 + rng.IntN(nevents*3/4)
					c, f, outbox, marked := relay(killAt)
					f.cut() // the kill: nothing more reaches the journal
					s, err := store.Open(b.Context(), base, outbox)
					if err != nil {
						b.Fatal(err)
					}
					got, _ := s.Load(b.Context())
					window := 0
					for k, name := range keys {
						if got[name] > marked[k] {
							b.Fatalf("key %s saved at %d, past its committable %d", name, got[name], marked[k])
						}
						window += int(marked[k] - got[name])
					}
					windows += float64(window)
					done, cancel := context.WithCancel(b.Context())
					cancel()
					_ = c.Close(done) // stop the dropped committer's goroutine
				}
				n := float64(b.N)
				b.ReportMetric(nevents*n/elapsed.Seconds(), "events/s")
				b.ReportMetric(saves/n, "saves/run")
				b.ReportMetric(windows/n, "window-events")
				b.ReportMetric(windows/n/float64(cfg.every), "window/every")
				b.ReportMetric(windows/n/(nevents*n/elapsed.Seconds())*1000, "window-ms")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
