package relay_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/faultproxy"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
	"github.com/outboxkit/offsetstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// recorder is the broker of the tests: it counts every publication of
// every (stream, sequence number), and notices two relays publishing at
// once.
type recorder struct {
	mu     sync.Mutex
	counts map[string]map[uint64]int

	active   atomic.Int32
	overlaps atomic.Int64
}

func newRecorder() *recorder { return &recorder{counts: map[string]map[uint64]int{}} }

func (rec *recorder) add(ev journal.Event) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	m := rec.counts[ev.PersistenceID]
	if m == nil {
		m = map[uint64]int{}
		rec.counts[ev.PersistenceID] = m
	}
	m[ev.SequenceNr]++
}

// publish is a Config.Publish that records.
func (rec *recorder) publish(_ context.Context, ev journal.Event) error {
	if rec.active.Add(1) > 1 {
		rec.overlaps.Add(1)
	}
	defer rec.active.Add(-1)
	rec.add(ev)
	return nil
}

// tally counts, against want (stream → highest seq), the events published
// more than once (each extra time) and those never published.
func (rec *recorder) tally(want map[string]uint64) (republished, lost int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for pid, n := range want {
		for seq := uint64(1); seq <= n; seq++ {
			switch c := rec.counts[pid][seq]; {
			case c == 0:
				lost++
			case c > 1:
				republished += c - 1
			}
		}
	}
	return republished, lost
}

// complete reports whether every event of want was published.
func (rec *recorder) complete(want map[string]uint64) bool {
	_, lost := rec.tally(want)
	return lost == 0
}

// appendEvents appends events from..to of each stream and records them in
// want.
func appendEvents(t *testing.T, j journal.Journal, want map[string]uint64, pids []string, from, to uint64) {
	t.Helper()
	var evs []journal.Event
	for _, pid := range pids {
		for seq := from; seq <= to; seq++ {
			evs = append(evs, journal.Event{PersistenceID: pid, SequenceNr: seq, Payload: fmt.Appendf(nil, "%s/%d", pid, seq)})
		}
		want[pid] = to
	}
	if err := j.Append(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
}

func streams(prefix string, n int) []string {
	pids := make([]string, n)
	for i := range pids {
		pids[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return pids
}

// running is a relay whose Run runs in a goroutine.
type running struct {
	*relay.Relay
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg relay.Config) *running {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	run := &running{Relay: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-run.done })
	return run
}

// stop cancels the relay's context (a graceful shutdown) and returns Run's
// error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context's cancellation")
		return nil
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func savedOffsets(t *testing.T, pool *pgxpool.Pool, outbox string) map[string]uint64 {
	t.Helper()
	st, err := store.Open(t.Context(), pgjournal.New(pool), outbox)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// leaseHolder returns the backend pid holding outbox's leadership, 0 if
// none.
func leaseHolder(t *testing.T, pool *pgxpool.Pool, outbox string) uint32 {
	t.Helper()
	var pid uint32
	err := pool.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_locks
 WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND (classid::bigint << 32 | objid::bigint) = $1
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, leader.Key(outbox)).Scan(&pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// One relay, nothing failing: every event of every stream exactly once,
// and the final offsets at every stream's head after the shutdown.
func TestPublishesEveryEventOnce(t *testing.T) {
	t.Parallel()
	bothModes(t, testPublishesEveryEventOnce)
}

func testPublishesEveryEventOnce(t *testing.T, incremental bool) {
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("order", 20), 1, 25)
	rec := newRecorder()
	r := start(t, relay.Config{Incremental: incremental, Pool: db.Pool, Outbox: "once", Publish: rec.publish, CommitEvery: 50, BatchSize: 10})

	eventually(t, "every event published", func() bool { return rec.complete(want) })
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after shutdown: %v", err)
	}
	if republished, lost := rec.tally(want); republished != 0 || lost != 0 {
		t.Fatalf("re-published %d, lost %d; want 0 and 0", republished, lost)
	}
	got := savedOffsets(t, db.Pool, "once")
	for pid, n := range want {
		if got[pid] != n {
			t.Errorf("saved offset of %s = %d, want %d (the final flush)", pid, got[pid], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d saved keys, want %d (no outbox stream among them)", len(got), len(want))
	}
	st := r.Stats()
	if st.Published != 500 || st.Leaderships != 1 || st.Saves < 1 {
		t.Errorf("stats %+v: want 500 published, 1 leadership and saves", st)
	}
}

// Two relays on one outbox: the standby publishes nothing while the leader
// runs, takes over after the leader's shutdown, and again (a third relay
// standing by) after the leader's session is terminated. Nothing is lost,
// and what is published twice is bounded by the committer's window.
func TestStandbyTakesOver(t *testing.T) {
	t.Parallel()
	bothModes(t, testStandbyTakesOver)
}

func testStandbyTakesOver(t *testing.T, incremental bool) {
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	pids := streams("cart", 10)
	appendEvents(t, j, want, pids, 1, 30)
	rec := newRecorder()
	const every = 20
	cfg := func() relay.Config {
		return relay.Config{Incremental: incremental, Pool: db.NewPool(t, nil), Outbox: "standby", Publish: rec.publish,
			CommitEvery: every, CommitInterval: 200 * time.Millisecond, BatchSize: 7}
	}

	a := start(t, cfg())
	eventually(t, "a leads", func() bool { return a.Stats().Leaderships == 1 })
	b := start(t, cfg())
	eventually(t, "a publishes everything", func() bool { return rec.complete(want) })
	time.Sleep(50 * time.Millisecond) // b has had the time to do wrong
	if st := b.Stats(); st.Leaderships != 0 || st.Published != 0 {
		t.Fatalf("the standby led or published while the leader ran: %+v", st)
	}

	// 1. The leader shuts down: its final flush, then b.
	if err := a.stop(t); err != nil {
		t.Fatalf("a: %v", err)
	}
	eventually(t, "b takes over", func() bool { return b.Stats().Leaderships == 1 })
	appendEvents(t, j, want, pids, 31, 60)
	eventually(t, "b publishes the new events", func() bool { return rec.complete(want) })
	if republished, _ := rec.tally(want); republished != 0 {
		t.Fatalf("re-published %d after a graceful handover (final flush), want 0", republished)
	}

	// 2. The leader's session is terminated: c, standing by, takes over.
	c := start(t, cfg())
	holder := leaseHolder(t, db.Pool, "standby")
	waitStandby(t, db.Pool) // c
	appendEvents(t, j, want, pids, 61, 75)
	// b has published some of them, and not saved them all (one save per
	// 20 marks), when it loses the lease.
	eventually(t, "b publishes some of the new events", func() bool { return b.Stats().Published >= 310 })
	var ok bool
	if err := db.Pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, int64(holder)).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the leader's session %d: %v %v", holder, ok, err)
	}
	eventually(t, "c takes over", func() bool { return c.Stats().Leaderships >= 1 })
	appendEvents(t, j, want, pids, 76, 90)
	eventually(t, "every event published", func() bool { return rec.complete(want) })
	eventually(t, "c saves it", func() bool { return savedOffsets(t, db.Pool, "standby")[pids[0]] == 90 })

	for name, r := range map[string]*running{"b": b, "c": c} {
		if err := r.stop(t); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	republished, lost := rec.tally(want)
	t.Logf("re-published %d, lost %d, overlaps %d; b %+v, c %+v", republished, lost, rec.overlaps.Load(), b.Stats(), c.Stats())
	if lost != 0 {
		t.Fatalf("lost %d events", lost)
	}
	// Only what the terminated leader b published can be unsaved:
	// everything a published was flushed at the graceful handover. (b's
	// unsaved marks are not bounded by the commit window: while a save is
	// in flight, marks go on accumulating for the next one.)
	// When a save of b's landed after c opened, c was fenced while leading
	// and reopened at that save: what c published before it learnt of it
	// is published again too.
	bound := int(b.Stats().Published)
	if c.Stats().Fenced > 0 {
		bound += int(c.Stats().Published)
	}
	if republished > bound {
		t.Fatalf("re-published %d, over the bound %d (b's events, plus c's events if c was fenced)", republished, bound)
	}
	if n := rec.overlaps.Load(); n > 1 {
		t.Fatalf("two relays published at once %d times (one race at the terminated session at most)", n)
	}
	if got := savedOffsets(t, db.Pool, "standby"); got[pids[0]] != 90 {
		t.Fatalf("saved offset %d, want 90", got[pids[0]])
	}
}

// A stream created after the relay started is discovered and published.
func TestDiscoversNewStreams(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("early", 3), 1, 5)
	rec := newRecorder()
	appendEvents(t, j, map[string]uint64{}, []string{"other-1"}, 1, 3) // not followed
	r := start(t, relay.Config{Pool: db.Pool, Outbox: "discover", Publish: rec.publish, DiscoverEvery: 20 * time.Millisecond,
		Follow: func(pid string) bool { return !strings.HasPrefix(pid, "other-") }})
	eventually(t, "the early streams published", func() bool { return rec.complete(want) })

	appendEvents(t, j, want, []string{"late-1", "late-2"}, 1, 4)
	eventually(t, "the late streams published", func() bool { return rec.complete(want) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if republished, lost := rec.tally(want); republished != 0 || lost != 0 {
		t.Fatalf("re-published %d, lost %d", republished, lost)
	}
	got := savedOffsets(t, db.Pool, "discover")
	if got["late-2"] != 4 {
		t.Fatalf("late-2 saved at %d, want 4", got["late-2"])
	}
	if _, ok := got["other-1"]; ok || len(rec.counts["other-1"]) != 0 {
		t.Fatalf("a stream Follow refuses was relayed")
	}
}

// broker acknowledges asynchronously published events in a shuffled
// order, and fails the one event named by fail.
type broker struct {
	rec     *recorder
	fail    string // "pid/seq" to fail, "" for none
	mu      sync.Mutex
	waiting []func()
	acked   map[string]map[uint64]bool
}

func (b *broker) publish(_ context.Context, ev journal.Event, ack func(error)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiting = append(b.waiting, func() {
		if fmt.Sprintf("%s/%d", ev.PersistenceID, ev.SequenceNr) == b.fail {
			ack(errors.New("broker refused"))
			return
		}
		b.rec.add(ev)
		b.mu.Lock()
		if b.acked[ev.PersistenceID] == nil {
			b.acked[ev.PersistenceID] = map[uint64]bool{}
		}
		b.acked[ev.PersistenceID][ev.SequenceNr] = true
		b.mu.Unlock()
		ack(nil)
	})
}

// deliver acks what waits, in a random order, until ctx ends.
func (b *broker) deliver(ctx context.Context) {
	for ctx.Err() == nil {
		b.mu.Lock()
		w := b.waiting
		b.waiting = nil
		b.mu.Unlock()
		rand.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
		for _, ack := range w {
			ack()
		}
		time.Sleep(time.Millisecond)
	}
}

// contiguous is the highest seq of pid below which every event was acked.
func (b *broker) contiguous(pid string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n uint64
	for b.acked[pid][n+1] {
		n++
	}
	return n
}

// Async publishing with acks out of order: one ack fails, the relay stops
// with a *PublishError, and no saved offset passes an event that was not
// acknowledged. A restarted relay then publishes the rest: 0 lost.
func TestAsyncOutOfOrderAcks(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	pids := streams("pay", 8)
	appendEvents(t, j, want, pids, 1, 40)
	rec := newRecorder()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	b1 := &broker{rec: rec, fail: pids[3] + "/17", acked: map[string]map[uint64]bool{}}
	go b1.deliver(ctx)
	r1 := start(t, relay.Config{Pool: db.Pool, Outbox: "async", PublishAsync: b1.publish, CommitEvery: 10, MaxInFlight: 25, BatchSize: 9})
	var err error
	select {
	case err = <-r1.done:
		r1.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not stop on the failed ack")
	}
	var pe *relay.PublishError
	if !errors.As(err, &pe) || pe.PersistenceID != pids[3] || pe.SequenceNr != 17 {
		t.Fatalf("Run: %v; want the *PublishError of %s/17", err, pids[3])
	}
	saved := savedOffsets(t, db.Pool, "async")
	for _, pid := range pids {
		if c := b1.contiguous(pid); saved[pid] > c {
			t.Errorf("%s saved at %d, but only 1..%d were all acknowledged", pid, saved[pid], c)
		}
	}
	if saved[pids[3]] >= 17 {
		t.Errorf("%s saved at %d, past the failed event 17", pids[3], saved[pids[3]])
	}

	b2 := &broker{rec: rec, acked: map[string]map[uint64]bool{}}
	go b2.deliver(ctx)
	r2 := start(t, relay.Config{Pool: db.Pool, Outbox: "async", PublishAsync: b2.publish, CommitEvery: 10, MaxInFlight: 25, BatchSize: 9})
	eventually(t, "the restarted relay publishes the rest", func() bool { return rec.complete(want) })
	if err := r2.stop(t); err != nil {
		t.Fatal(err)
	}
	republished, lost := rec.tally(want)
	t.Logf("re-published %d after the failed ack, lost %d", republished, lost)
	if lost != 0 {
		t.Fatalf("lost %d", lost)
	}
	if got := savedOffsets(t, db.Pool, "async"); got[pids[3]] != 40 {
		t.Fatalf("final offset %d, want 40", got[pids[3]])
	}
}

// PublishTx: sink rows and offsets in one transaction. The first relay is
// killed mid-way (its context cancelled inside a transaction, which rolls
// back); the second finishes. Every event has exactly one sink row.
func TestExactlyOnceSink(t *testing.T) {
	t.Parallel()
	bothModes(t, testExactlyOnceSink)
}

func testExactlyOnceSink(t *testing.T, incremental bool) {
	db := testdb.New(t)
	if _, err := db.Pool.Exec(t.Context(), `CREATE TABLE sink (id bigserial PRIMARY KEY, pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("acct", 6), 1, 30)
	var inserted atomic.Int64
	killed := make(chan struct{})
	publishTx := func(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
		for _, ev := range events {
			if _, err := tx.Exec(ctx, `INSERT INTO sink (pid, seq) VALUES ($1, $2)`, ev.PersistenceID, int64(ev.SequenceNr)); err != nil {
				return err
			}
			if inserted.Add(1) == 77 {
				close(killed) // the relay dies inside this transaction
				<-ctx.Done()
				return ctx.Err()
			}
		}
		return nil
	}
	r1 := start(t, relay.Config{Incremental: incremental, Pool: db.Pool, Outbox: "tx", PublishTx: publishTx, BatchSize: 4})
	<-killed
	if err := r1.stop(t); err != nil {
		t.Fatalf("the killed relay: %v", err)
	}
	if st := r1.Stats(); st.Published != 76/4*4 {
		t.Fatalf("the killed relay committed %d events, want %d (whole batches before the kill)", st.Published, 76/4*4)
	}
	r2 := start(t, relay.Config{Incremental: incremental, Pool: db.Pool, Outbox: "tx", PublishTx: publishTx, BatchSize: 4})
	eventually(t, "the second relay catches up", func() bool { return r2.Stats().IdlePasses > 0 })
	if err := r2.stop(t); err != nil {
		t.Fatal(err)
	}
	rows, dups, missing := sinkTally(t, db.Pool, "acct-")
	t.Logf("sink rows %d, duplicates %d, missing %d; inserted %d (rolled back %d)", rows, dups, missing, inserted.Load(), inserted.Load()-int64(rows))
	if rows != 180 || dups != 0 || missing != 0 {
		t.Fatalf("sink rows %d, duplicates %d, missing %d; want 180, 0, 0", rows, dups, missing)
	}
}

// sinkTally counts the rows of table sink, the (pid, seq) pairs it holds
// more than once, and the events of the streams named prefix… that it
// lacks.
func sinkTally(t *testing.T, pool *pgxpool.Pool, prefix string) (rows, dups, missing int) {
	t.Helper()
	err := pool.QueryRow(t.Context(), `SELECT
  (SELECT count(*) FROM sink),
  (SELECT count(*) FROM (SELECT 1 FROM sink GROUP BY pid, seq HAVING count(*) > 1) d),
  (SELECT count(*) FROM journal e WHERE starts_with(e.persistence_id, $1)
      AND NOT EXISTS (SELECT 1 FROM sink s WHERE s.pid = e.persistence_id AND s.seq = e.sequence_nr))`, prefix).Scan(&rows, &dups, &missing)
	if err != nil {
		t.Fatal(err)
	}
	return rows, dups, missing
}

// PublishTx through a connection that dies right after a COMMIT reached
// the server: the transaction committed, its reply was lost. The relay
// runs the batch's transaction again, which finds the first one committed
// (ErrRetryTx) and goes on from the offsets: Run does not stop, and every
// event has exactly one sink row.
func TestExactlyOnceSinkCommitReplyLost(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	if _, err := db.Pool.Exec(t.Context(), `CREATE TABLE sink (id bigserial PRIMARY KEY, pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	appendEvents(t, pgjournal.New(db.Pool), want, streams("lost", 4), 1, 12)
	pool, proxy := faultproxy.Pool(t, db, db.URL, nil)
	publishTx := func(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
		for _, ev := range events {
			if _, err := tx.Exec(ctx, `INSERT INTO sink (pid, seq) VALUES ($1, $2)`, ev.PersistenceID, int64(ev.SequenceNr)); err != nil {
				return err
			}
		}
		return nil
	}
	proxy.DropReplyAfter([]byte("commit"))
	r := start(t, relay.Config{Pool: pool, Outbox: "lost", PublishTx: publishTx, BatchSize: 4})
	eventually(t, "the relay catches up", func() bool { return r.Stats().IdlePasses > 0 })
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil (the lost reply handled)", err)
	}
	if proxy.Dropped.Load() != 1 {
		t.Fatalf("the proxy dropped %d replies; the fault did not happen", proxy.Dropped.Load())
	}
	rows, dups, missing := sinkTally(t, db.Pool, "lost-")
	st := r.Stats()
	t.Logf("sink rows %d, duplicates %d, missing %d; stats %+v", rows, dups, missing, st)
	if rows != 48 || dups != 0 || missing != 0 || st.Leaderships != 1 {
		t.Fatalf("sink rows %d, duplicates %d, missing %d, leaderships %d; want 48, 0, 0, 1", rows, dups, missing, st.Leaderships)
	}
}

// After a graceful shutdown nothing of the relay is left running: not the
// committer, not the lease's watcher. Not parallel: goleak looks at every
// goroutine of the binary.
func TestShutdownLeaksNothing(t *testing.T) {
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	want := map[string]uint64{}
	appendEvents(t, j, want, streams("leak", 4), 1, 10)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pool, err := pgxpool.New(t.Context(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rec := newRecorder()
	r, err := relay.New(relay.Config{Pool: pool, Outbox: "leak", Publish: rec.publish, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, "every event published", func() bool { return rec.complete(want) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if holder := leaseHolder(t, db.Pool, "leak"); holder != 0 {
		t.Fatalf("the lease is still held by backend %d after Run returned", holder)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	pub := func(context.Context, journal.Event) error { return nil }
	for name, cfg := range map[string]relay.Config{
		"no pool":          {Outbox: "x", Publish: pub},
		"no publish":       {Pool: &pgxpool.Pool{}, Outbox: "x"},
		"two modes":        {Pool: &pgxpool.Pool{}, Outbox: "x", Publish: pub, PublishAsync: func(context.Context, journal.Event, func(error)) {}},
		"empty outbox":     {Pool: &pgxpool.Pool{}, Publish: pub},
		"negative window":  {Pool: &pgxpool.Pool{}, Outbox: "x", Publish: pub, CommitEvery: -1},
		"negative unsaved": {Pool: &pgxpool.Pool{}, Outbox: "x", Publish: pub, MaxUnsaved: -1},
		"negative failure": {Pool: &pgxpool.Pool{}, Outbox: "x", Publish: pub, MaxSaveFailure: -time.Second},
		"not a lister":     {Pool: &pgxpool.Pool{}, Outbox: "x", Publish: pub, Journal: plainJournal{journal.NewMemory()}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := relay.New(cfg); !errors.Is(err, relay.ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// plainJournal hides every optional interface of its journal.
type plainJournal struct{ journal.Journal }

// bothModes runs body once with the relay's store in full mode and once in
// incremental mode, as parallel subtests.
func bothModes(t *testing.T, body func(t *testing.T, incremental bool)) {
	for _, m := range []struct {
		name        string
		incremental bool
	}{{"Full", false}, {"Incremental", true}} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			body(t, m.incremental)
		})
	}
}
