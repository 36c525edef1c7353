package relay_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/faultproxy"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
)

// sinkTx is a Config.PublishTx that inserts one sink row per event.
func sinkTx(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
	for _, ev := range events {
		if _, err := tx.Exec(ctx, `INSERT INTO sink (pid, seq) VALUES ($1, $2)`, ev.PersistenceID, int64(ev.SequenceNr)); err != nil {
			return err
		}
	}
	return nil
}

func createSink(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `CREATE TABLE sink (id bigserial PRIMARY KEY, pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

// idleInTransaction counts the sessions of the test database left idle in
// a transaction.
func idleInTransaction(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Exactly-once relay, the leader's network vanishing silently (no FIN, no
// RST) just as it sends a COMMIT: the COMMIT never reaches the server,
// whose session waits idle in the transaction, holding the offsets
// stream's lock. The standby takes the leadership once the leader's
// session times out, and must commit within a bound tied to the session
// timeout d: the relay's transactions carry idle_in_transaction_session_timeout
// = d, so the server ends the vanished transaction within d of its last
// message. Every event then has exactly one sink row.
func TestVanishedLeaderTxDoesNotBlockStandby(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	createSink(t, db.Pool)
	want := map[string]uint64{}
	appendEvents(t, pgjournal.New(db.Pool), want, streams("gone", 4), 1, 30)
	const d = time.Second
	opts := []leader.Option{leader.WithSessionTimeout(d)}
	viaProxy, proxy := faultproxy.Pool(t, db, db.URL, nil)
	t.Cleanup(func() { proxy.Close() }) // before the pool's close, which would wait on the silent sockets

	slow := func(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
		time.Sleep(20 * time.Millisecond) // so that a is still at work when the network goes
		return sinkTx(ctx, tx, events)
	}
	a := start(t, relay.Config{Pool: viaProxy, Outbox: "gone", PublishTx: slow, BatchSize: 3, LeaderOptions: opts})
	eventually(t, "a leads and commits", func() bool { return a.Stats().Saves >= 2 })
	b := start(t, relay.Config{Pool: db.NewPool(t, nil), Outbox: "gone", PublishTx: sinkTx, BatchSize: 3, LeaderOptions: opts})
	waitStandby(t, db.Pool)

	proxy.VanishAt([]byte("commit")) // a's next COMMIT, and everything after it
	eventually(t, "a's network vanishes", proxy.Vanished)
	gone := time.Now()
	if n := idleInTransaction(t, db.Pool); n != 1 {
		t.Logf("%d sessions idle in transaction right after the vanish (want 1: a's)", n)
	}
	deadline := gone.Add(15 * d)
	for b.Stats().Saves == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("b has not committed %v after a's network vanished (b %+v; %d sessions idle in transaction): the vanished transaction blocks it",
				time.Since(gone), b.Stats(), idleInTransaction(t, db.Pool))
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(gone)
	t.Logf("b committed %v after a's network vanished (session timeout %v)", took, d)
	// a's lease session ends within d of its last ping (idle_session_timeout),
	// a's transaction within d of its last statement: b commits about d
	// after the vanish; 2d is the documented bound, plus slack for a
	// loaded machine.
	if bound := 2*d + 2*time.Second; took > bound {
		t.Fatalf("b committed %v after the vanish, over %v", took, bound)
	}

	eventually(t, "b catches up", func() bool { return b.Stats().IdlePasses > 0 })
	for name, r := range map[string]*running{"a": a, "b": b} {
		if err := r.stop(t); err != nil {
			t.Errorf("%s: Run = %v", name, err)
		}
	}
	rows, dups, missing := sinkTally(t, db.Pool, "gone-")
	t.Logf("sink rows %d, duplicates %d, missing %d; a %+v, b %+v", rows, dups, missing, a.Stats(), b.Stats())
	if rows != 120 || dups != 0 || missing != 0 {
		t.Fatalf("sink rows %d, duplicates %d, missing %d; want 120, 0, 0", rows, dups, missing)
	}
	if n := idleInTransaction(t, db.Pool); n != 0 {
		t.Fatalf("%d sessions still idle in transaction", n)
	}
}

// holdStreamLock takes, in a transaction of its own that it leaves open,
// the lock that AppendNext takes on outbox's offsets stream (see the
// pgjournal package documentation): the state a writer leaves when its
// network vanished in the middle of a save and nothing on the server ends
// its session (a proxy in between keeps the connection up). release ends
// the transaction.
func holdStreamLock(t *testing.T, db *testdb.DB, outbox string) (release func()) {
	t.Helper()
	tx, err := db.NewPool(t, nil).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `SELECT pg_advisory_xact_lock(1868985204, hashtext($1::text))`, "outbox::"+outbox+"::offsets"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(context.Background()) }) }
	t.Cleanup(release)
	return release
}

// Exactly-once relay, the offsets stream's lock held without end by a
// writer no server-side bound reaches: each transaction of the relay
// gives up its lock wait after twice the session timeout (lock_timeout)
// and runs again; Run returns ErrSaveFailing once no transaction has
// committed for MaxSaveFailure, with nothing committed; a relay whose
// wait ends before that bound commits everything, exactly once.
func TestStreamLockHeldTx(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	createSink(t, db.Pool)
	want := map[string]uint64{}
	appendEvents(t, pgjournal.New(db.Pool), want, streams("held", 3), 1, 10)
	release := holdStreamLock(t, db, "held")
	const d = time.Second // lock_timeout 2s
	opts := []leader.Option{leader.WithSessionTimeout(d)}
	handler := &logs{}

	began := time.Now()
	r1 := start(t, relay.Config{Pool: db.Pool, Outbox: "held", PublishTx: sinkTx, BatchSize: 5, LeaderOptions: opts,
		MaxSaveFailure: 3 * time.Second, Logger: slog.New(handler)})
	var err error
	select {
	case err = <-r1.done:
		r1.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run still runs after 30s (stats %+v)", r1.Stats())
	}
	took := time.Since(began)
	st := r1.Stats()
	t.Logf("Run returned after %v: %v; stats %+v", took, err, st)
	var pgErr *pgconn.PgError
	if !errors.Is(err, relay.ErrSaveFailing) || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Fatalf("Run = %v; want ErrSaveFailing after lock timeouts (55P03)", err)
	}
	switch {
	case took < 3*time.Second:
		t.Errorf("Run returned after %v, before MaxSaveFailure (3s)", took)
	case st.Leaderships > 1:
		// The lease was lost meanwhile (a loaded machine: a ping late by
		// d/5): the new leadership's clock started afresh.
		t.Logf("%d leaderships: no upper bound to check", st.Leaderships)
	case took > 3*time.Second+2*d+3*time.Second:
		t.Errorf("Run returned after %v; want after MaxSaveFailure (3s), within one more lock wait (%v)", took, 2*d)
	}
	if st.SaveErrors < 2 || st.LastSaveError == nil || st.Saves != 0 || st.Published != 0 {
		t.Errorf("stats %+v; want lock timeouts counted, the last kept, nothing committed", st)
	}
	if _, ok := handler.find(slog.LevelWarn, "waited too long for a lock"); !ok {
		t.Errorf("no warning logged")
	}
	if rows, _, _ := sinkTally(t, db.Pool, "held-"); rows != 0 {
		t.Fatalf("%d sink rows committed while the offsets could not be saved", rows)
	}

	r2 := start(t, relay.Config{Pool: db.Pool, Outbox: "held", PublishTx: sinkTx, BatchSize: 5, LeaderOptions: opts,
		MaxSaveFailure: time.Minute, Logger: slog.New(handler)})
	eventually(t, "a lock timeout", func() bool { return r2.Stats().SaveErrors > 0 })
	release()
	eventually(t, "r2 catches up", func() bool { return r2.Stats().IdlePasses > 0 })
	if err := r2.stop(t); err != nil {
		t.Fatalf("r2: Run = %v", err)
	}
	rows, dups, missing := sinkTally(t, db.Pool, "held-")
	if st := r2.Stats(); rows != 30 || dups != 0 || missing != 0 || st.LastSaveError != nil {
		t.Fatalf("sink rows %d, duplicates %d, missing %d, stats %+v; want 30, 0, 0 and the error cleared", rows, dups, missing, st)
	}
	if _, ok := handler.find(slog.LevelInfo, "works again"); !ok {
		t.Errorf("no record that saving works again")
	}
}

// The committer's path (Publish): the offsets stream's lock held without
// end makes every save wait. Publishing stops at MaxUnsaved and Run
// returns ErrSaveFailing (the saves hang: no error of their own) once no
// save has succeeded for MaxSaveFailure; the final flush is abandoned
// after CloseTimeout.
func TestStreamLockHeldSave(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	appendEvents(t, pgjournal.New(db.Pool), map[string]uint64{}, streams("stuck", 4), 1, 50)
	holdStreamLock(t, db, "stuck")
	rec := newRecorder()
	const maxFailure, closeAfter = 2 * time.Second, 300 * time.Millisecond
	began := time.Now()
	r := start(t, relay.Config{Pool: db.Pool, Outbox: "stuck", Publish: rec.publish, CommitEvery: 10,
		CommitInterval: 50 * time.Millisecond, MaxUnsaved: 30, MaxSaveFailure: maxFailure, CloseTimeout: closeAfter})
	var err error
	select {
	case err = <-r.done:
		r.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run still runs after 30s (stats %+v)", r.Stats())
	}
	took := time.Since(began)
	st := r.Stats()
	t.Logf("Run returned after %v: %v; stats %+v", took, err, st)
	var sfe *relay.SaveFailureError
	if !errors.As(err, &sfe) || !errors.Is(err, relay.ErrSaveFailing) || sfe.Err != nil {
		t.Fatalf("Run = %v; want a *SaveFailureError for hanging saves (no save error)", err)
	}
	if took < maxFailure || took > maxFailure+closeAfter+3*time.Second {
		t.Errorf("Run returned after %v; want after MaxSaveFailure (%v), within CloseTimeout (%v) more", took, maxFailure, closeAfter)
	}
	if st.Published > 30 || st.Saves != 0 || st.Unsaved != st.Published {
		t.Errorf("stats %+v; want at most 30 published, none saved", st)
	}
}
