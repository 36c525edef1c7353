package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/faultproxy"
	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// The split-brain, lost-acknowledgement and worker-outage tests on a
// journal distributed by persistence_id over a Citus cluster.

// citusJournal is a journal on db's table through pool.
func citusJournal(db *testdb.CitusDB, pool *pgxpool.Pool) *pgjournal.Journal {
	return pgjournal.New(pool, pgjournal.WithTable(db.Table()), pgjournal.WithCitus())
}

// reloadCitus opens outbox afresh on a pool of its own and returns its
// offsets: what a restarted relay would resume from.
func reloadCitus(t *testing.T, db *testdb.CitusDB, outbox string) map[string]uint64 {
	t.Helper()
	pool := db.NewPool(t, nil)
	defer pool.Close()
	return load(t, open(t, citusJournal(db, pool), outbox))
}

// citusTarget runs the split-brain tests on a table of the Citus cluster:
// both relays' writes route to the same shard, whose primary key decides.
func citusTarget(t *testing.T) splitTarget {
	db := testdb.NewCitus(t)
	return splitTarget{
		figure:  "citus_",
		journal: func() *pgjournal.Journal { return citusJournal(db, db.NewPool(t, nil)) },
		reload:  func(outbox string) map[string]uint64 { return reloadCitus(t, db, outbox) },
	}
}

// TestSplitBrainOnCitus is TestSplitBrain on a journal distributed over
// the cluster.
func TestSplitBrainOnCitus(t *testing.T) {
	t.Parallel()
	rel.ForEachMode(t, true, func(t *testing.T, m rel.Mode) {
		tg := citusTarget(t)
		tg.mode = m
		runSplitBrain(t, tg)
	})
}

// TestSplitBrainFailoverOnCitus is TestSplitBrainFailover on a journal
// distributed over the cluster.
func TestSplitBrainFailoverOnCitus(t *testing.T) {
	t.Parallel()
	rel.ForEachMode(t, true, func(t *testing.T, m rel.Mode) {
		tg := citusTarget(t)
		tg.mode = m
		runSplitBrainFailover(t, tg)
	})
}

// TestDroppedReplyAfterCommitOnCitus drops the coordinator's reply to the
// store's INSERT after the worker committed it, round after round. The
// store adopts its own write, at once (read back on a fresh connection)
// or at the next save (when the read-back fails too), and never reports
// ErrFenced or loses it.
func TestDroppedReplyAfterCommitOnCitus(t *testing.T) {
	t.Parallel()
	rel.ForEachMode(t, true, func(t *testing.T, m rel.Mode) {
		db := testdb.NewCitus(t)
		pool, proxy := faultproxy.Pool(t, db, db.URL, nil)
		runDroppedReply(t, droppedReply{
			mode:    m,
			figure:  "citus_",
			rounds:  rel.EnvInt(t, envDropRounds, 10),
			journal: citusJournal(db, pool),
			proxy:   proxy,
			reload:  func(outbox string) map[string]uint64 { return reloadCitus(t, db, outbox) },
		})
	})
}

// TestWorkerStoppedDuringSaves stops the worker that holds the outbox's
// shard while a relay saves in a loop. With the worker down, Save fails
// with an error naming it (never ErrFenced, never a silent success); once
// it is back, the same store saves again without a reopen, and every
// acknowledged save is there. It stops a worker of the shared cluster, so
// it does not run in parallel with the other Citus tests.
func TestWorkerStoppedDuringSaves(t *testing.T) {
	ctx := context.Background()
	db := testdb.NewCitus(t)
	j := citusJournal(db, db.Pool)
	s := open(t, j, "worker-outage", store.WithWriterID(fmt.Sprintf("outage-%d", rand.Uint64())))
	save(t, s, map[string]uint64{"all": 0, "before": 1})

	stopLoop := startLoop(s)
	time.Sleep(300 * time.Millisecond)
	stopAt := time.Now()
	worker, err := db.StopWorker(ctx, t, s.PersistenceID())
	if err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(stopAt)
	time.Sleep(500 * time.Millisecond)
	during := stopLoop()
	t.Logf("worker %s stopped in %v; the loop saved %d times and failed %d times", worker, stopTook, during.ok, during.fails)
	if during.fails == 0 {
		t.Fatalf("no save failed while %s was down: the fault did not happen", worker)
	}

	// Down: a save fails at once, with an error that says which node.
	begin := time.Now()
	err = s.Save(ctx, map[string]uint64{"down": 1})
	toError := time.Since(begin)
	if err == nil {
		t.Fatalf("Save with %s down succeeded", worker)
	}
	if isFenced(err) || errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("Save with %s down = %v, want a connection error, not a fence or conflict", worker, err)
	}
	if !strings.Contains(err.Error(), worker) {
		t.Errorf("Save with %s down = %q: the error does not name the worker", worker, err)
	}
	t.Logf("Save with the worker down failed after %v: %v", toError, err)
	if toError > 5*time.Second {
		t.Errorf("Save with the worker down took %v to fail", toError)
	}
	if got := load(t, s); got["down"] != 0 {
		t.Fatalf("Load shows the failed save: %v", got)
	}

	// Back: the same store saves again, without a reopen.
	begin = time.Now()
	if err := db.Cluster.StartWorker(ctx, worker); err != nil {
		t.Fatal(err)
	}
	startTook := time.Since(begin)
	final := map[string]uint64{"final": 1}
	tries, err := within(10*time.Second, func() error { return s.Save(ctx, final) })
	if err != nil {
		t.Fatalf("no save succeeded within 10 s after %s was back (%d tries): %v", worker, tries, err)
	}
	toRecover := time.Since(begin)
	t.Logf("worker started in %v; first save succeeded %v after the start began, at try %d", startTook, toRecover, tries)
	merge(during.acked, final)
	for _, err := range during.fenced {
		t.Fatalf("spurious ErrFenced for the only writer: %v", err)
	}
	got := reloadCitus(t, db, "worker-outage")
	if l := lost(got, during.acked); len(l) > 0 {
		t.Fatalf("%d acknowledged offsets lost: %v", len(l), l)
	}
	wantOffsets(t, got, load(t, s))
	rel.Figure(t, "citus_worker_stop", rel.Millis(stopTook), "ms")
	rel.Figure(t, "citus_save_time_to_error_worker_down", rel.Millis(toError), "ms")
	rel.Figure(t, "citus_worker_start", rel.Millis(startTook), "ms")
	rel.Figure(t, "citus_save_time_to_recover", rel.Millis(toRecover), "ms")
	rel.Figure(t, "citus_save_tries_to_recover", float64(tries), "saves")
}
