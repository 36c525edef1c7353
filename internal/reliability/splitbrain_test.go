package reliability_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/codec"
	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
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

// TestSplitBrain races two relays on one outbox, each on its own pool.
// The first conflict decides: one side keeps writing, the other gets
// ErrFenced from every later Save, Rewind and Forget. Every snapshot
// row, replayed in sequence order, has per-key offsets that never
// decrease, and the rows are gap-free.
func TestSplitBrain(t *testing.T) {
	t.Parallel()
	d := rel.EnvDuration(t, envSplitDuration, 3*time.Second)
	db := testdb.New(t)
	ctx := context.Background()
	sides := make([]*racer, 2)
	for i, name := range []string{"relay-a", "relay-b"} {
		j := pgjournal.New(db.NewPool(t, nil))
		sides[i] = &racer{name: name, j: j, acked: map[string]uint64{},
			s: open(t, j, "split", store.WithRetention(keepAll), store.WithWriterID(name))}
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
	checkSnapshots(t, db, "split", winner.s.SequenceNr())
	got := reload(t, db, "split")
	if l := lost(got, winner.acked); len(l) > 0 {
		t.Fatalf("acknowledged offsets lost: %v", l)
	}
	rel.Figure(t, "split_winner_saves_after_conflict", float64(winner.okAfterLoss), "saves")
	rel.Figure(t, "split_loser_fenced_calls", float64(loser.fenced), "calls")
}

// TestSplitBrainFailover is the relay that loses and comes back: a fenced
// side reopens the outbox at once and races again, for the whole
// duration, so ownership changes hands many times. No acknowledged save of
// either side is lost, and offsets never go back in any snapshot.
func TestSplitBrainFailover(t *testing.T) {
	t.Parallel()
	d := rel.EnvDuration(t, envSplitDuration, 3*time.Second)
	db := testdb.New(t)
	ctx := context.Background()
	var counter atomic.Uint64
	sides := make([]*racer, 2)
	for i, name := range []string{"relay-a", "relay-b"} {
		j := pgjournal.New(db.NewPool(t, nil))
		sides[i] = &racer{name: name, j: j, acked: map[string]uint64{}, s: open(t, j, "failover", store.WithRetention(keepAll))}
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
					s, err := store.Open(ctx, r.j, "failover", store.WithRetention(keepAll))
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
	checkSnapshots(t, db, "failover", hi)
	got := reload(t, db, "failover")
	for _, r := range sides {
		if l := lost(got, r.acked); len(l) > 0 {
			t.Fatalf("%s: acknowledged offsets lost: %v", r.name, l)
		}
	}
	rel.Figure(t, "failover_handovers", float64(sides[0].fenced+sides[1].fenced), "fences")
	rel.Figure(t, "failover_saves", float64(sides[0].ok+sides[1].ok), "saves")
}

// checkSnapshots replays every snapshot row of outbox in sequence order:
// sequence numbers 1..hi without a gap, each row decodable, and no key's
// offset lower than in the row before, nor any key dropped.
func checkSnapshots(t *testing.T, db *testdb.DB, outbox string, hi uint64) {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(),
		`SELECT sequence_nr, payload, writer_uuid FROM journal WHERE persistence_id = $1 ORDER BY sequence_nr`, store.PersistenceID(outbox))
	if err != nil {
		t.Fatalf("read snapshots: %v", err)
	}
	defer rows.Close()
	prev := map[string]uint64{}
	var n uint64
	writers := map[string]int{}
	for rows.Next() {
		var seq int64
		var payload []byte
		var writer string
		if err := rows.Scan(&seq, &payload, &writer); err != nil {
			t.Fatalf("scan: %v", err)
		}
		n++
		if uint64(seq) != n {
			t.Fatalf("snapshot %d follows %d: a gap", seq, n-1)
		}
		m, err := codec.Decode(payload)
		if err != nil {
			t.Fatalf("snapshot %d: %v", seq, err)
		}
		for k, v := range prev {
			if m[k] < v {
				t.Fatalf("snapshot %d (writer %s): %q went back from %d to %d", seq, writer, k, v, m[k])
			}
		}
		prev = m
		writers[writer]++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read snapshots: %v", err)
	}
	if n != hi {
		t.Fatalf("%d snapshots, want %d (the highest a relay wrote)", n, hi)
	}
	t.Logf("%d snapshots replayed, by writer: %v", n, writers)
}
