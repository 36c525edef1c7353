package relay_test

import (
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// The hooks see what the relay does: the committer it starts (and its
// end), and every save through the observer given in StoreOptions.
func TestObserveHooks(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("order", 5), 1, 20)
	var (
		mu      sync.Mutex
		started []string
		stats   []store.CommitterStats
		writes  []store.WriteEvent
		done    int
	)
	rec := newRecorder()
	r := start(t, relay.Config{
		Pool: db.Pool, Outbox: "observed", Publish: rec.publish, CommitEvery: 10,
		StoreOptions: []store.Option{store.WithObserver(func(ev store.WriteEvent) {
			mu.Lock()
			writes = append(writes, ev)
			mu.Unlock()
		})},
		OnCommitter: func(outbox string, c *store.Committer) func() {
			mu.Lock()
			started = append(started, outbox)
			mu.Unlock()
			return func() {
				mu.Lock()
				done++
				stats = append(stats, c.Stats())
				mu.Unlock()
			}
		},
	})
	eventually(t, "every event published", func() bool { return rec.complete(want) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(started) != 1 || started[0] != "observed" || done != 1 {
		t.Fatalf("hook called for %v, done %d times; want once for observed, done once", started, done)
	}
	if stats[0].Saves == 0 || stats[0].Unsaved != 0 {
		t.Fatalf("committer stats when done %+v: want saves and nothing unsaved", stats[0])
	}
	if len(writes) == 0 {
		t.Fatal("the store's observer saw no write")
	}
	for _, w := range writes {
		if w.Outbox != "observed" || w.Outcome != store.OutcomeOK || w.Bytes == 0 {
			t.Fatalf("write %+v: want ok saves of observed with bytes", w)
		}
	}
}
