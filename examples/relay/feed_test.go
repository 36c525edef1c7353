package relay_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// orderRecorder is a broker that checks each stream's order: an event is
// published only once every event below it in its stream was (a
// re-publication after a restart may go back, never skip ahead).
type orderRecorder struct {
	*recorder
	mu      sync.Mutex
	highest map[string]uint64
	skipped []string
}

func newOrderRecorder() *orderRecorder {
	return &orderRecorder{recorder: newRecorder(), highest: map[string]uint64{}}
}

func (o *orderRecorder) publish(ctx context.Context, ev journal.Event) error {
	o.mu.Lock()
	if h := o.highest[ev.PersistenceID]; ev.SequenceNr > h+1 {
		o.skipped = append(o.skipped, fmt.Sprintf("%s: %d published after %d", ev.PersistenceID, ev.SequenceNr, h))
	}
	o.highest[ev.PersistenceID] = max(o.highest[ev.PersistenceID], ev.SequenceNr)
	o.mu.Unlock()
	return o.recorder.publish(ctx, ev)
}

func (o *orderRecorder) wantInOrder(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.skipped) > 0 {
		t.Fatalf("published out of order: %v", o.skipped)
	}
}

// TestHeldTransactionIsPublished: a transaction that took its id and
// wrote its rows before many others, and commits after them (its rows'
// written_at the oldest), is published when it commits, while the
// others were published before it; every stream in order. On PostgreSQL
// and on Citus (there the held transaction may span workers: what the
// feed could miss, the sweep finds).
func TestHeldTransactionIsPublished(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"PostgreSQL", "Citus"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var pool *pgxpool.Pool
			var opts []pgjournal.Option
			cfg := relay.Config{Outbox: "held"}
			if backend == "Citus" {
				db := testdb.NewCitus(t)
				pool = db.NewPool(t, nil)
				opts = []pgjournal.Option{pgjournal.WithTable(db.Table()), pgjournal.WithCitus()}
				cfg.JournalOptions, cfg.SweepEvery = opts, 200*time.Millisecond
			} else {
				pool = testdb.New(t).Pool
			}
			j := pgjournal.New(pool, opts...)
			rec := newOrderRecorder()
			want := map[string]uint64{}
			appendEvents(t, j, want, streams("early", 5), 1, 3)
			cfg.Pool, cfg.Publish = pool, rec.publish
			r := start(t, cfg)
			eventually(t, "the early events published", func() bool { return rec.complete(want) })

			held, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer held.Rollback(context.Background())
			heldWant := map[string]uint64{}
			appendEvents(t, pgjournal.New(held, opts...), heldWant, []string{"held-a", "held-b"}, 1, 4)
			appendEvents(t, pgjournal.New(held, opts...), heldWant, streams("early", 1), 4, 4) // a stream the others do not write

			for round := range 10 {
				appendEvents(t, j, want, streams(fmt.Sprintf("later-%d", round), 3), 1, 2)
				eventually(t, "the later events published while the first transaction is open", func() bool { return rec.complete(want) })
			}
			if _, lost := rec.tally(heldWant); lost != len(heldWant)*4-3 {
				t.Fatalf("events of the open transaction published before its commit (%d of %d unpublished)", lost, len(heldWant)*4-3)
			}
			if err := held.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			for pid, h := range heldWant {
				want[pid] = h
			}
			eventually(t, "the held transaction's events published after its commit", func() bool { return rec.complete(want) })
			rec.wantInOrder(t)
			if err := r.stop(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if st := r.Stats(); st.Passes == 0 {
				t.Fatalf("Stats.Passes = 0: the relay did not follow the feed")
			}
		})
	}
}

// headsOnly is a journal with the listing and the heads of many streams,
// but no feed and no read of many streams: the relay falls back to
// reading every head each pass. Each field is the same journal; only the
// methods of the interfaces named are promoted.
type headsOnly struct {
	journal.Journal
	journal.NextAppender
	journal.StreamLister
	journal.HighestReader
}

// TestWithoutFeed: on a journal without the feed the relay reads every
// head each pass, as before, and publishes everything the same.
func TestWithoutFeed(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("old", 10), 1, 5)
	rec := newOrderRecorder()
	r := start(t, relay.Config{Pool: db.Pool, Outbox: "heads", Publish: rec.publish, Journal: headsOnly{j, j, j, j}, DiscoverEvery: 20 * time.Millisecond})
	eventually(t, "every event published", func() bool { return rec.complete(want) })
	appendEvents(t, j, want, streams("new", 5), 1, 3)
	appendEvents(t, j, want, streams("old", 10), 6, 7)
	eventually(t, "new streams and new events published", func() bool { return rec.complete(want) })
	rec.wantInOrder(t)
	if st := r.Stats(); st.Passes != 0 {
		t.Fatalf("Stats.Passes = %d on a journal without a feed", st.Passes)
	}
}

// TestRestartCatchesUp: a relay stops; while none runs, events are
// appended to known streams and new ones; the next relay (offsets saved:
// it lists the streams and reads each from its offset) publishes them
// all, in order, and nothing saved before again.
func TestRestartCatchesUp(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("s", 30), 1, 4)
	first := newOrderRecorder()
	r := start(t, relay.Config{Pool: db.Pool, Outbox: "restart", Publish: first.publish})
	eventually(t, "every event published", func() bool { return first.complete(want) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	saved := savedOffsets(t, db.Pool, "restart")
	appendEvents(t, j, want, streams("s", 30)[:10], 5, 9)
	appendEvents(t, j, want, streams("fresh", 7), 1, 2)
	second := newOrderRecorder()
	for pid, off := range saved {
		second.highest[pid] = off // the second relay goes on from there
	}
	r2 := start(t, relay.Config{Pool: db.Pool, Outbox: "restart", Publish: second.publish, BatchSize: 2})
	rest := map[string]uint64{}
	for pid, h := range want {
		rest[pid] = h
	}
	eventually(t, "the rest published", func() bool {
		second.mu.Lock()
		defer second.mu.Unlock()
		for pid, h := range rest {
			if second.highest[pid] < h && h > saved[pid] {
				return false
			}
		}
		return true
	})
	second.wantInOrder(t)
	// Nothing at or below a saved offset again.
	second.recorder.mu.Lock()
	for pid, seqs := range second.recorder.counts {
		for seq := range seqs {
			if seq <= saved[pid] {
				t.Errorf("%s/%d published again, below the saved offset %d", pid, seq, saved[pid])
			}
		}
	}
	second.recorder.mu.Unlock()
	if err := r2.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestFollowOnCitus: a relay on a distributed journal (WithCitus), fed
// by transactions that write to streams on both workers (two-phase
// commit, where the feed is not exact) and by single-stream ones:
// everything is published, each stream in order; the sweep runs.
func TestFollowOnCitus(t *testing.T) {
	t.Parallel()
	db := testdb.NewCitus(t)
	pool := db.NewPool(t, func(c *pgxpool.Config) { c.MaxConns = 8 })
	opts := []pgjournal.Option{pgjournal.WithTable(db.Table()), pgjournal.WithCitus()}
	j := pgjournal.New(pool, opts...)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("c", 12), 1, 3)
	rec := newOrderRecorder()
	r := start(t, relay.Config{Pool: pool, Outbox: "citus-follow", Publish: rec.publish, JournalOptions: opts, SweepEvery: 200 * time.Millisecond})
	for round := range 8 {
		appendEvents(t, j, want, streams("c", 12), uint64(4+2*round), uint64(5+2*round)) // one transaction over many workers
		appendEvents(t, j, want, []string{fmt.Sprintf("single-%d", round)}, 1, 2)
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "every event published", func() bool { return rec.complete(want) })
	rec.wantInOrder(t)
	eventually(t, "a sweep ran", func() bool { return r.Stats().Sweeps > 0 })
}

// TestShutdownDuringCatchUp stops a relay in the middle of a fresh
// outbox's catch-up scan, one page read ahead: Run returns nil, nothing
// is left running, the lease is released, and what was published is
// saved in order (a prefix of each stream).
func TestShutdownDuringCatchUp(t *testing.T) {
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("scan", 60), 1, 20)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pool, err := pgxpool.New(t.Context(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rec := newOrderRecorder()
	var n atomic.Int64
	halfway := make(chan struct{})
	publish := func(ctx context.Context, ev journal.Event) error {
		if n.Add(1) == 300 {
			close(halfway)
		}
		if n.Load() >= 300 {
			<-ctx.Done() // hold the scan here until the shutdown
			return ctx.Err()
		}
		return rec.publish(ctx, ev)
	}
	r, err := relay.New(relay.Config{Pool: pool, Outbox: "scan-stop", Publish: publish, BatchSize: 10, CommitEvery: 50})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-halfway:
	case err := <-done:
		t.Fatalf("Run returned before the shutdown: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the catch-up did not reach 300 events within 30s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after a shutdown during the catch-up: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of the shutdown")
	}
	if holder := leaseHolder(t, db.Pool, "scan-stop"); holder != 0 {
		t.Fatalf("the lease is still held by backend %d after Run returned", holder)
	}
	rec.wantInOrder(t)
	saved := savedOffsets(t, db.Pool, "scan-stop")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for pid, off := range saved {
		if off > rec.highest[pid] {
			t.Fatalf("%s saved at %d, above what was published (%d)", pid, off, rec.highest[pid])
		}
	}
	if len(saved) == 0 {
		t.Fatal("nothing saved by the final flush")
	}
}
