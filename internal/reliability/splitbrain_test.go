package reliability_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// keepAll is a retention that prunes nothing in these tests, so that every
// snapshot can be replayed afterwards.
const keepAll = 1 << 30

// racer is one of two relays on the same outbox, each on its own pool.
type racer struct {
	name  string
	j     *pgjournal.Journal
	s     *store.Store
	acked map[string]uint64

	ok          int       // calls that returned nil
	okAfterLoss int       // of those, after the other side's first fence
	fenced      int       // calls that failed with ErrFenced
	firstFence  time.Time // when this side was first fenced
	okAfterOwn  int       // calls that returned nil after this side's own first fence
	other       []error   // any other error: there must be none
	reopens     int
}

// splitTarget is where the split-brain tests run: a plain PostgreSQL or a
// Citus cluster.
type splitTarget struct {
	// figure prefixes the names of the figures the tests report.
	figure string
	// journal returns a journal on a pool of its own: one relay's.
	journal func() *pgjournal.Journal
	// reload opens outbox afresh and returns its offsets, as a restarted
	// relay would resume from them.
	reload func(outbox string) map[string]uint64
	// mode is the mode the relays' stores write in.
	mode rel.Mode
}

func postgresTarget(t *testing.T) splitTarget {
	db := testdb.New(t)
	return splitTarget{
		journal: func() *pgjournal.Journal { return pgjournal.New(db.NewPool(t, nil)) },
		reload:  func(outbox string) map[string]uint64 { return reload(t, db, outbox) },
	}
}

// TestSplitBrain races two relays on one outbox, each on its own pool.
// The first conflict decides: one side keeps writing, the other gets
// ErrFenced from every later Save, Rewind and Forget. Every snapshot
// row, replayed in sequence order, has per-key offsets that never
// decrease, and the rows are gap-free.
func TestSplitBrain(t *testing.T) {
	t.Parallel()
	rel.ForEachMode(t, true, func(t *testing.T, m rel.Mode) {
		tg := postgresTarget(t)
		tg.mode = m
		runSplitBrain(t, tg)
	})
}

func runSplitBrain(t *testing.T, tg splitTarget) {
	d := rel.EnvDuration(t, envSplitDuration, 3*time.Second)
	ctx := context.Background()
	sides := make([]*racer, 2)
	for i, name := range []string{"relay-a", "relay-b"} {
		j := tg.journal()
		sides[i] = &racer{name: name, j: j, acked: map[string]uint64{},
			s: open(t, j, "split", tg.mode.With(store.WithRetention(keepAll), store.WithWriterID(name))...)}
	}
	var counter atomic.Uint64
	var firstFence atomic.Int64 // unix nanos of the first fence on either side
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range sides {
		wg.Go(func() {
			<-start
			for end := time.Now().Add(d); time.Now().Before(end); {
				v := counter.Add(1)
				m := map[string]uint64{"shared": v, fmt.Sprint("k", v%32): v, r.name: v}
				var err error
				switch {
				case r.fenced%3 == 0:
					err = r.s.Save(ctx, m)
				case r.fenced%3 == 1:
					err = r.s.Rewind(ctx, map[string]uint64{"shared": 1})
				default:
					err = r.s.Forget(ctx, "shared")
				}
				now := time.Now()
				switch {
				case err == nil:
					r.ok++
					merge(r.acked, m)
					if f := firstFence.Load(); f != 0 && now.UnixNano() > f && r.fenced == 0 {
						r.okAfterLoss++
					}
					if r.fenced > 0 {
						r.okAfterOwn++
					}
				case isFenced(err):
					if r.fenced == 0 {
						r.firstFence = now
						firstFence.CompareAndSwap(0, now.UnixNano())
					}
					r.fenced++
					// A fenced call does no I/O: do not spin.
					time.Sleep(time.Millisecond)
				default:
					r.other = append(r.other, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	a, b := sides[0], sides[1]
	for _, r := range sides {
		t.Logf("%s: %d saves, %d after the first conflict, %d calls fenced, %d other errors", r.name, r.ok, r.okAfterLoss, r.fenced, len(r.other))
		for _, err := range r.other {
			t.Errorf("%s: unexpected error: %v", r.name, err)
		}
		if r.okAfterOwn > 0 {
			t.Errorf("%s: %d calls succeeded after it was fenced", r.name, r.okAfterOwn)
		}
	}
	winner, loser := a, b
	if a.fenced > 0 {
		winner, loser = b, a
	}
	switch {
	case a.fenced > 0 && b.fenced > 0:
		t.Fatalf("both relays were fenced: nobody owns the outbox")
	case loser.fenced == 0:
		t.Fatalf("no relay was fenced: two writers wrote the same outbox unchallenged")
	case loser.fenced < 3:
		t.Fatalf("%s was fenced only %d times: the race ended too early to show that every later call fails", loser.name, loser.fenced)
	case winner.okAfterLoss == 0:
		t.Fatalf("%s did not write after the conflict", winner.name)
	}
	checkSnapshots(t, winner.j, "split", winner.s.SequenceNr())
	got := tg.reload("split")
	if l := lost(got, winner.acked); len(l) > 0 {
		t.Fatalf("acknowledged offsets lost: %v", l)
	}
	rel.Figure(t, tg.figure+"split_winner_saves_after_conflict", float64(winner.okAfterLoss), "saves")
	rel.Figure(t, tg.figure+"split_loser_fenced_calls", float64(loser.fenced), "calls")
}

// TestSplitBrainFailover is the relay that loses and comes back: a fenced
// side reopens the outbox at once and races again, for the whole
// duration, so ownership changes hands many times. No acknowledged save of
// either side is lost, and offsets never go back in any snapshot.
func TestSplitBrainFailover(t *testing.T) {
	t.Parallel()
	rel.ForEachMode(t, true, func(t *testing.T, m rel.Mode) {
		tg := postgresTarget(t)
		tg.mode = m
		runSplitBrainFailover(t, tg)
	})
}

func runSplitBrainFailover(t *testing.T, tg splitTarget) {
	d := rel.EnvDuration(t, envSplitDuration, 3*time.Second)
	ctx := context.Background()
	var counter atomic.Uint64
	sides := make([]*racer, 2)
	for i, name := range []string{"relay-a", "relay-b"} {
		j := tg.journal()
		sides[i] = &racer{name: name, j: j, acked: map[string]uint64{}, s: open(t, j, "failover", tg.mode.With(store.WithRetention(keepAll))...)}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range sides {
		wg.Go(func() {
			<-start
			for end := time.Now().Add(d); time.Now().Before(end); {
				v := counter.Add(1)
				m := map[string]uint64{"shared": v, fmt.Sprint("k", v%32): v, r.name: v}
				err := r.s.Save(ctx, m)
				switch {
				case err == nil:
					r.ok++
					merge(r.acked, m)
				case isFenced(err):
					r.fenced++
					s, err := store.Open(ctx, r.j, "failover", tg.mode.With(store.WithRetention(keepAll))...)
					if err != nil {
						r.other = append(r.other, err)
						return
					}
					r.s = s
					r.reopens++
				default:
					r.other = append(r.other, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	var hi uint64
	for _, r := range sides {
		t.Logf("%s: %d saves, fenced and reopened %d times", r.name, r.ok, r.reopens)
		for _, err := range r.other {
			t.Errorf("%s: unexpected error: %v", r.name, err)
		}
		hi = max(hi, r.s.SequenceNr())
	}
	if sides[0].fenced+sides[1].fenced == 0 {
		t.Fatal("no relay was ever fenced: the race did not happen")
	}
	checkSnapshots(t, sides[0].j, "failover", hi)
	got := tg.reload("failover")
	for _, r := range sides {
		if l := lost(got, r.acked); len(l) > 0 {
			t.Fatalf("%s: acknowledged offsets lost: %v", r.name, l)
		}
	}
	rel.Figure(t, tg.figure+"failover_handovers", float64(sides[0].fenced+sides[1].fenced), "fences")
	rel.Figure(t, tg.figure+"failover_saves", float64(sides[0].ok+sides[1].ok), "saves")
}

// checkSnapshots replays every snapshot of outbox through j in sequence
// order: sequence numbers 1..hi without a gap, each decodable, and no
// key's offset lower than in the snapshot before, nor any key dropped.
func checkSnapshots(t *testing.T, j journal.Journal, outbox string, hi uint64) {
	t.Helper()
	prev := map[string]uint64{}
	var n uint64
	writers := map[string]int{}
	for ev, err := range j.Replay(context.Background(), store.PersistenceID(outbox), 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			t.Fatalf("replay snapshots: %v", err)
		}
		n++
		if ev.SequenceNr != n {
			t.Fatalf("snapshot %d follows %d: a gap", ev.SequenceNr, n-1)
		}
		m, err := rel.NextOffsets(prev, n-1, ev)
		if err != nil {
			t.Fatalf("snapshot %d: %v", ev.SequenceNr, err)
		}
		for k, v := range prev {
			if m[k] < v {
				t.Fatalf("snapshot %d (writer %s): %q went back from %d to %d", ev.SequenceNr, ev.WriterUUID, k, v, m[k])
			}
		}
		prev = m
		writers[ev.WriterUUID]++
	}
	if n != hi {
		t.Fatalf("%d snapshots, want %d (the highest a relay wrote)", n, hi)
	}
	t.Logf("%d snapshots replayed, by writer: %v", n, writers)
}
