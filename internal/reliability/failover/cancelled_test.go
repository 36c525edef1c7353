package failover_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// How the wait of a commit for the synchronous standby ends in
// TestCancelledSyncWait.
type waitEnd int

const (
	// pg_terminate_backend of the session: PostgreSQL keeps the commit
	// (a WARNING, then the session ends: the client sees its connection
	// die, the outcome unknown).
	terminated waitEnd = iota
	// pg_cancel_backend of the session: PostgreSQL keeps the commit and
	// reports success, after a WARNING.
	cancelled
	// The write's ctx ends on a pool whose pgx sends a cancel request
	// then (pgconn.CancelRequestContextWatcherHandler): as cancelled.
	cancelRequest
	// statement_timeout on the session: PostgreSQL disarms it before the
	// commit, so it never ends the wait; the write's ctx does (pgx closes
	// the connection, the commit keeps waiting, invisible).
	statementTimeout
)

func (e waitEnd) String() string {
	return [...]string{"terminated", "cancelled", "cancel-request", "statement-timeout"}[e]
}

// cwCase is one write whose wait for the standby ends so.
type cwCase struct {
	name    string
	end     waitEnd
	tx      bool // SaveTx with a sink row, else Save
	mode    rel.Mode
	control bool // without the confirmation: the journal hides ReadReplicated (terminated), or the pool is not prepared by ConfigurePool (the others)

	s      *store.Store
	txPool *pgxpool.Pool
	sink   string

	signalled  chan struct{} // closed once the write's wait was signalled (terminated, cancelled)
	err1, err2 error         // the write; the SaveTx run again after ErrInDoubt
	acked      bool          // the write (or its run again) returned nil, or ErrRetryTx: acknowledged
}

const cwKey = "order-1"

// TestCancelledSyncWait: with the synchronous standby stopped, writes of
// many stores wait for it, and each wait ends another way (see waitEnd),
// in full and incremental mode, Save and SaveTx with a sink row. The
// primary is then killed and the standby promoted. A write through the
// store as it is (ConfigurePool, a journal that confirms) is never
// acknowledged, adopted or not: its row is not on the promoted server. The
// same writes without the confirmation (the controls) are acknowledged,
// and lost (an incremental store's next delta, whose base is gone, is
// refused and a full snapshot written: its chain still opens). Run with
// synchronous_commit on and remote_apply.
func TestCancelledSyncWait(t *testing.T) {
	for _, level := range []string{"on", "remote_apply"} {
		t.Run(level, func(t *testing.T) { testCancelledSyncWait(t, level) })
	}
}

func testCancelledSyncWait(t *testing.T, level string) {
	r := testdb.NewReplicated(t, testdb.WithSynchronousCommit(level))
	ctx := t.Context()
	var cases []*cwCase
	for _, m := range rel.Modes {
		for _, end := range []waitEnd{terminated, cancelled, cancelRequest, statementTimeout} {
			for _, tx := range []bool{false, true} {
				for _, control := range []bool{false, true} {
					if tx && (end == cancelRequest || end == statementTimeout) {
						continue // Save covers the client's side; SaveTx's commit is the caller's
					}
					if control && end == statementTimeout {
						continue // nothing to control: the wait never ends early
					}
					what := "save"
					if tx {
						what = "savetx"
					}
					name := strings.ToLower(fmt.Sprintf("%s-%s-%s", m.Name, end, what))
					if control {
						name += "-control"
					}
					cases = append(cases, &cwCase{name: name, end: end, tx: tx, mode: m, control: control})
				}
			}
		}
	}
	for _, c := range cases {
		c.open(t, r)
	}
	// Each store's first write is on both servers.
	for _, c := range cases {
		if err := c.write(ctx, 1); err != nil {
			t.Fatalf("%s: first write: %v", c.name, err)
		}
	}

	if err := r.StopStandby(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() { c.writeWaiting(ctx) })
	}
	// End the waits that a signal ends, once each write waits.
	admin := adminConn(t, r.PrimaryURL())
	for _, c := range cases {
		fn := map[waitEnd]string{terminated: "pg_terminate_backend", cancelled: "pg_cancel_backend"}[c.end]
		if fn == "" {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		pid, err := syncWaiter(wctx, admin, c.name)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := signalBackend(ctx, admin, fn, pid); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		close(c.signalled)
	}
	wg.Wait()

	// The failover: the primary killed, the standby (started) promoted.
	if err := r.KillPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := r.PrimaryURL()
	for _, c := range cases {
		c.check(t, promoted)
	}

	// The stores go on against the promoted server (with a new standby).
	if err := r.AddStandby(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if !c.tx {
			c.goOn(t, r.PrimaryURL())
		}
	}
}

// open opens c's store (and sink) on the pair's multi-host URL.
func (c *cwCase) open(t *testing.T, r *testdb.Replicated) {
	t.Helper()
	ctx := t.Context()
	var configure func(*pgxpool.Config)
	if c.end == cancelRequest {
		configure = func(cfg *pgxpool.Config) {
			cfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 2 * time.Second}
			}
		}
	}
	if c.end == statementTimeout {
		configure = func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["statement_timeout"] = "200" }
	}
	plain := c.control && c.end != terminated
	pool := newPool(t, r.URL, c.name, plain, configure)
	j := pgjournal.New(pool)
	var sj journal.Journal = j
	if c.control && c.end == terminated {
		sj = hideConfirmation(j)
	}
	s, err := store.Open(ctx, sj, c.name, c.mode.Options...)
	if err != nil {
		t.Fatalf("%s: open: %v", c.name, err)
	}
	c.s = s
	c.signalled = make(chan struct{})
	if c.tx {
		c.txPool = newPool(t, r.URL, c.name, plain, configure)
		c.sink = pgx.Identifier{"sink_" + strings.ReplaceAll(c.name, "-", "_")}.Sanitize()
		if _, err := pool.Exec(ctx, `CREATE TABLE `+c.sink+` (pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
			t.Fatal(err)
		}
	}
}

// write saves cwKey at seq: a Save, or a SaveTx with one sink row. The
// first write also saves 50 other keys, so that in incremental mode a
// change of cwKey alone is a delta.
func (c *cwCase) write(ctx context.Context, seq uint64) error {
	offsets := map[string]uint64{cwKey: seq}
	if seq == 1 {
		for i := range 50 {
			offsets[fmt.Sprintf("other-%02d", i)] = 1
		}
	}
	if !c.tx {
		return c.s.Save(ctx, offsets)
	}
	tx, err := c.txPool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `INSERT INTO `+c.sink+` (pid, seq) VALUES ($1, $2)`, cwKey, int64(seq)); err != nil {
		return err
	}
	return c.s.SaveTx(ctx, pgjournal.New(tx), offsets, tx.Commit)
}

// writeWaiting writes seq 2 while the standby is stopped, and a SaveTx
// again after ErrInDoubt, as the reference relay does. The write's ctx
// ends 3 s after its wait was signalled (what follows the signal, the
// confirmation's wait for the standby, ends with it), or, for a write no
// signal ends, 3 s after it began: the test signals one write after
// another, which may take longer than that.
func (c *cwCase) writeWaiting(ctx context.Context) {
	var wctx context.Context
	var cancel context.CancelFunc
	if c.end == terminated || c.end == cancelled {
		wctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		go func() {
			select {
			case <-c.signalled:
			case <-wctx.Done():
				return
			}
			select {
			case <-time.After(3 * time.Second):
				cancel()
			case <-wctx.Done():
			}
		}()
	} else {
		wctx, cancel = context.WithTimeout(ctx, 3*time.Second)
	}
	c.err1 = c.write(wctx, 2)
	cancel()
	if c.tx && errors.Is(c.err1, store.ErrInDoubt) {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c.err2 = c.write(wctx, 2)
		cancel()
	}
	c.acked = c.err1 == nil || (c.tx && (c.err2 == nil && errors.Is(c.err1, store.ErrInDoubt) || errors.Is(c.err2, store.ErrRetryTx)))
}

// check compares c's outcome with what the promoted server has.
func (c *cwCase) check(t *testing.T, promoted string) {
	t.Helper()
	ctx := t.Context()
	m, _, err := loadFresh(ctx, promoted, c.name)
	if err != nil {
		t.Errorf("%s: open on the promoted server: %v", c.name, err)
		return
	}
	lost := 0
	if c.acked && m[cwKey] < 2 {
		lost = 1
	}
	var sink []uint64
	if c.tx {
		if sink, err = sinkRows(ctx, promoted, c.sink, cwKey); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: write: %v; run again: %v; acknowledged %v; on the promoted server %s=%d, sink %v: lost %d",
		c.name, c.err1, c.err2, c.acked, cwKey, m[cwKey], sink, lost)
	rel.Figure(t, "cancelled_wait_"+strings.ReplaceAll(c.name, "-", "_")+"_lost", float64(lost), "saves")
	switch {
	case !c.control && c.acked:
		t.Errorf("%s: acknowledged (%v, %v), and the promoted server has %s=%d: the confirmation must keep it in doubt", c.name, c.err1, c.err2, cwKey, m[cwKey])
	case !c.control && !errors.Is(c.err1, store.ErrInDoubt):
		t.Errorf("%s: %v, want an error matching ErrInDoubt", c.name, c.err1)
	case c.control && !c.acked:
		t.Errorf("%s (control): not acknowledged (%v, %v): the control must show the hole", c.name, c.err1, c.err2)
	case c.control && lost == 0:
		t.Errorf("%s (control): acknowledged and found on the promoted server: the control must show the loss", c.name)
	}
	if c.tx && (len(sink) != int(m[cwKey]) || (len(sink) > 0 && sink[len(sink)-1] != m[cwKey])) {
		t.Errorf("%s: sink %v does not match the offset %d", c.name, sink, m[cwKey])
	}
}

// goOn saves seq 3 against the promoted server, then checks that a fresh
// store opens it, at 3. The incremental controls' stores hold a delta the
// promoted server lost: their next delta, a successor of that missing row,
// is refused (journal.ErrBaseMissing) and a full snapshot written instead,
// so the chain stays whole even without the confirmation.
func (c *cwCase) goOn(t *testing.T, promoted string) {
	t.Helper()
	ctx := t.Context()
	var err error
	for range 20 { // the pool reconnects to the promoted server
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = c.s.Save(sctx, map[string]uint64{cwKey: 3})
		cancel()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("%s: save after the failover: %v", c.name, err)
		return
	}
	m, _, err := loadFresh(ctx, promoted, c.name)
	if err != nil || m[cwKey] != 3 {
		t.Errorf("%s: open after the failover: %v, %v; want %s=3", c.name, m, err, cwKey)
	}
}
