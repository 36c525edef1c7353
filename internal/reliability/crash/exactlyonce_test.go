package crash_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/faultproxy"
	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// EnvExactlyOnceCycles sets the number of kill-and-restart cycles of
// TestExactlyOnceAcrossCrashes.
const EnvExactlyOnceCycles = "OFFSETSTORE_EXACTLY_ONCE_CYCLES"

// eoStreams is how many source streams the exactly-once relay follows.
const eoStreams = 16

// eoRelay publishes events of eoStreams source streams into a sink table
// of the same database: one sink row per event and the offsets, in one
// transaction (Store.SaveTx). The source streams are unbounded until
// target is set; their events are numbered 1, 2, 3 ….
type eoRelay struct {
	mode   rel.Mode
	s      *store.Store
	txPool *pgxpool.Pool
	sink   string // the sink table, quoted

	target atomic.Pointer[map[string]uint64] // nil: no end yet

	committed, retried, failed atomic.Int64
	mu                         sync.Mutex
	fenced                     []error // must stay empty: there is no other writer
}

func streamID(i int) string { return fmt.Sprintf("order-%02d", i) }

// done reports whether every stream reached its target.
func (r *eoRelay) done(ctx context.Context) bool {
	t := r.target.Load()
	if t == nil {
		return false
	}
	m, err := r.s.Load(ctx)
	if err != nil {
		return false
	}
	for pid, want := range *t {
		if m[pid] < want {
			return false
		}
	}
	return true
}

// step publishes the next one to four events of a random stream, resuming
// from the offsets Load returns, and reports the outcome.
func (r *eoRelay) step(ctx context.Context) error {
	offsets, err := r.s.Load(ctx)
	if err != nil {
		return err
	}
	pid := streamID(rand.IntN(eoStreams))
	from := offsets[pid] + 1
	to := from + uint64(rand.IntN(4))
	if t := r.target.Load(); t != nil {
		to = min(to, (*t)[pid])
	}
	if from > to {
		return nil
	}
	tx, err := r.txPool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `INSERT INTO `+r.sink+` (pid, seq) SELECT $1, g FROM generate_series($2::bigint, $3::bigint) AS g`,
		pid, int64(from), int64(to)); err != nil {
		return err
	}
	return r.s.SaveTx(ctx, pgjournal.New(tx), map[string]uint64{pid: to}, tx.Commit)
}

func (r *eoRelay) run(ctx context.Context) {
	for ctx.Err() == nil && !r.done(ctx) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := r.step(sctx)
		cancel()
		switch {
		case err == nil:
			r.committed.Add(1)
		case errors.Is(err, store.ErrRetryTx):
			r.retried.Add(1) // an earlier transaction in doubt had committed: go on from Load
		case errors.Is(err, store.ErrFenced):
			r.mu.Lock()
			r.fenced = append(r.fenced, err)
			r.mu.Unlock()
			return
		default:
			r.failed.Add(1)
			time.Sleep(5 * time.Millisecond) // the server may be down: do not spin
		}
	}
}

// TestExactlyOnceAcrossCrashes runs a relay that commits one sink row per
// event with its offsets in one transaction, while PostgreSQL is killed
// (SIGKILL of the container) and restarted, connections are reset and
// COMMIT replies are dropped after the server committed. At the end every
// event up to the final offsets has exactly one sink row: none twice,
// none missing, and none beyond the offsets.
//
// It must not run beside any other test of its binary: Restart takes the
// shared server down.
func TestExactlyOnceAcrossCrashes(t *testing.T) {
	cycles := rel.EnvInt(t, EnvExactlyOnceCycles, 10)
	db := testdb.New(t)
	if !db.Server.CanRestart() {
		t.Skipf("exactly-once test: the server of $%s cannot be killed: %v", testdb.EnvDatabaseURL, testdb.ErrNoContainer)
	}
	ctx := context.Background()

	// Both of the relays' pools go through one fault proxy: the stores'
	// own journal (reads that resolve doubt, prunes) and the transactions.
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	viaProxy := func(c *pgxpool.Config) {
		c.ConnConfig.Host = "127.0.0.1"
		c.ConnConfig.Port = proxy.Port()
	}
	// One relay per store mode, each with its outbox and sink table, side
	// by side through the same faults.
	var relays []*eoRelay
	for _, m := range rel.Modes {
		sink := pgx.Identifier{"sink_" + strings.ToLower(m.Name)}.Sanitize()
		if _, err := db.Pool.Exec(ctx, `CREATE TABLE `+sink+` (pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
			t.Fatal(err) // no unique key: a duplicate must show, not be refused
		}
		storePool, txPool := db.NewPool(t, viaProxy), db.NewPool(t, viaProxy)
		s, err := store.Open(ctx, pgjournal.New(storePool), eoOutbox(m), m.Options...)
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, &eoRelay{mode: m, s: s, txPool: txPool, sink: sink})
	}

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, r := range relays {
		wg.Go(func() { r.run(rctx) })
	}
	wg.Add(1)

	// Connection faults between the kills: a reset of every connection,
	// or the reply to the next COMMIT dropped after the server acted.
	var resets, drops atomic.Int64
	fctx, stopFaults := context.WithCancel(ctx)
	go func() {
		defer wg.Done()
		for fctx.Err() == nil {
			time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
			if rand.IntN(2) == 0 {
				proxy.ResetAll()
				resets.Add(1)
			} else if !proxy.Armed() {
				proxy.DropReplyAfter([]byte("commit"))
				drops.Add(1)
			}
		}
	}()

	for cycle := 1; cycle <= cycles; cycle++ {
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		kctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := db.Server.Restart(kctx, true)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: restart: %v", cycle, err)
		}
		t.Logf("cycle %d: killed and restarted; %d and %d transactions committed so far", cycle, relays[0].committed.Load(), relays[1].committed.Load())
	}
	stopFaults()
	proxy.DropReplyAfter(nil)

	// An end for every stream a little past where it is, and the relays
	// finish by themselves. (Load may be behind a commit still in doubt;
	// the end checked is what a fresh store loads.)
	for _, r := range relays {
		offsets, err := r.s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		target := make(map[string]uint64, eoStreams)
		for i := range eoStreams {
			target[streamID(i)] = offsets[streamID(i)] + 3
		}
		r.target.Store(&target)
	}
	for _, r := range relays {
		for t0 := time.Now(); !r.done(ctx); time.Sleep(20 * time.Millisecond) {
			if time.Since(t0) > time.Minute {
				t.Fatalf("%s: the relay did not reach the end within a minute (fenced: %v)", r.mode.Name, r.fenced)
			}
			r.mu.Lock()
			fenced := len(r.fenced)
			r.mu.Unlock()
			if fenced > 0 {
				break
			}
		}
	}
	stop()
	wg.Wait()
	for _, r := range relays {
		r.check(t, db, cycles, resets.Load(), drops.Load())
	}
}

// eoOutbox is the outbox of the relay of mode m.
func eoOutbox(m rel.Mode) string {
	if m.Options == nil {
		return "exactly-once"
	}
	return "exactly-once-" + strings.ToLower(m.Name)
}

// check verifies the relay's sink against the offsets a fresh store
// loads, and reports the figures (prefixed by the mode but in full mode).
func (r *eoRelay) check(t *testing.T, db *testdb.DB, cycles int, resets, drops int64) {
	t.Helper()
	ctx := context.Background()
	for _, err := range r.fenced {
		t.Errorf("%s: spurious ErrFenced for the only writer: %v", r.mode.Name, err)
	}
	// What a fresh relay loads must be the end: the offsets are durable.
	fresh, err := store.Open(ctx, pgjournal.New(db.Pool), eoOutbox(r.mode))
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := fresh.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var events, duplicates, missing, beyond int64
	for pid, want := range *r.target.Load() {
		// The end may lie past the target: a commit in doubt when the
		// target was set may have carried the stream further.
		end := loaded[pid]
		if end < want {
			t.Errorf("%s: %s: offset %d after the run, want at least %d", r.mode.Name, pid, end, want)
		}
		events += int64(end)
		var rows, distinct, over, inRange int64
		if err := db.Pool.QueryRow(ctx, `
			SELECT count(*), count(DISTINCT seq), count(*) FILTER (WHERE seq > $2),
			       count(DISTINCT seq) FILTER (WHERE seq BETWEEN 1 AND $2)
			  FROM `+r.sink+` WHERE pid = $1`, pid, int64(end)).Scan(&rows, &distinct, &over, &inRange); err != nil {
			t.Fatal(err)
		}
		duplicates += rows - distinct
		missing += int64(end) - inRange
		beyond += over
	}
	if duplicates != 0 || missing != 0 || beyond != 0 {
		t.Errorf("%s: exactly-once broken: %d duplicate sink rows, %d events missing, %d rows beyond the offsets", r.mode.Name, duplicates, missing, beyond)
	}
	st := r.s.Stats()
	t.Logf("%s: %d cycles, %d connection resets, %d COMMIT replies dropped: %d transactions committed, %d retried after an adopted commit, %d failed; %d writes adopted",
		r.mode.Name, cycles, resets, drops, r.committed.Load(), r.retried.Load(), r.failed.Load(), st.Adopted)
	prefix := "exactly_once_"
	if r.mode.Options != nil {
		prefix += strings.ToLower(r.mode.Name) + "_"
	}
	rel.Figure(t, prefix+"cycles", float64(cycles), "cycles")
	rel.Figure(t, prefix+"events", float64(events), "events")
	rel.Figure(t, prefix+"duplicates", float64(duplicates), "events")
	rel.Figure(t, prefix+"missing", float64(missing), "events")
	rel.Figure(t, prefix+"beyond_offsets", float64(beyond), "rows")
	rel.Figure(t, prefix+"transactions_committed", float64(r.committed.Load()), "transactions")
	rel.Figure(t, prefix+"transactions_retried", float64(r.retried.Load()), "transactions")
	rel.Figure(t, prefix+"transactions_failed", float64(r.failed.Load()), "transactions")
	rel.Figure(t, prefix+"connection_resets", float64(resets), "resets")
	rel.Figure(t, prefix+"commit_replies_dropped", float64(drops), "replies")
}
