package relay_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// callLog records the start of every call of a publish function, in one
// order for all relays: who called, and whether the context it was given
// had already ended (the relay's lease lost) when the call began.
type callLog struct {
	mu    sync.Mutex
	calls []publishCall
	count map[string]int
}

type publishCall struct {
	relay string
	ctx   context.Context // the call's ctx: one per leadership
	cause error           // context.Cause of the call's ctx at its start; nil while live
}

func newCallLog() *callLog { return &callLog{count: map[string]int{}} }

func (l *callLog) enter(relay string, ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := publishCall{relay: relay, ctx: ctx}
	if ctx.Err() != nil {
		c.cause = context.Cause(ctx)
	}
	l.calls = append(l.calls, c)
	l.count[relay]++
}

func (l *callLog) n(relay string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[relay]
}

func (l *callLog) all() []publishCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// afterLoss returns the calls that began with their ctx already ended,
// and of those the ones past the first of their leadership. The relay
// looks at ctx just before it calls, so a loss that lands between that
// look and the call's own (a few instructions) lets one call begin with
// its ctx ended; a relay that does not look makes many.
func (l *callLog) afterLoss() (all, past []publishCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[context.Context]bool{}
	for _, c := range l.calls {
		if c.cause == nil {
			continue
		}
		all = append(all, c)
		if seen[c.ctx] {
			past = append(past, c)
		}
		seen[c.ctx] = true
	}
	return all, past
}

// runs returns the callers in call order, one entry per run of calls by
// the same relay: "a b a b" when the leadership went a, b, a, b and no
// relay called while another led.
func (l *callLog) runs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.calls {
		if len(out) == 0 || out[len(out)-1] != c.relay {
			out = append(out, c.relay)
		}
	}
	return out
}

// After its lease is lost, a relay calls no publish function, even one
// that ignores its ctx (a broker client without a context) and is in the
// middle of a batch: each mode's publish function here sleeps through the
// loss and never looks at ctx. Two relays, the leader's lease session
// terminated mid-batch four times; every call must begin while its
// relay's lease is held (its ctx live), and the calls of the two relays
// never interleave: each leadership's calls come after the previous
// leader's last call.
func TestNoPublishAfterLeaseLost(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sync", "async", "tx"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			if _, err := db.Pool.Exec(t.Context(), `CREATE TABLE sink (id bigserial PRIMARY KEY, pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			appendEvents(t, pgjournal.New(db.Pool), map[string]uint64{}, streams("lease", 4), 1, 500)
			log := newCallLog()
			const outbox = "lease-lost"
			cfg := func(name string) relay.Config {
				pool := db.NewPool(t, nil)
				c := relay.Config{Pool: pool, Outbox: outbox, BatchSize: 200, CommitEvery: 20,
					CommitInterval: 50 * time.Millisecond}
				switch mode {
				case "sync":
					c.Publish = func(ctx context.Context, ev journal.Event) error {
						log.enter(name, ctx)
						time.Sleep(2 * time.Millisecond) // a call that does not watch ctx
						return nil
					}
				case "async":
					c.PublishAsync = func(ctx context.Context, ev journal.Event, ack func(error)) {
						log.enter(name, ctx)
						time.Sleep(time.Millisecond)
						go ack(nil)
					}
				case "tx":
					c.BatchSize = 10
					c.PublishTx = func(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
						log.enter(name, ctx)
						for _, ev := range events {
							time.Sleep(time.Millisecond)
							// context.Background: a sink that does not watch ctx.
							if _, err := tx.Exec(context.Background(), `INSERT INTO sink (pid, seq) VALUES ($1, $2)`, ev.PersistenceID, int64(ev.SequenceNr)); err != nil {
								return err
							}
						}
						return nil
					}
				}
				return c
			}
			relays := map[string]*running{"a": start(t, cfg("a"))}
			eventually(t, "a leads", func() bool { return relays["a"].Stats().Leaderships == 1 })
			relays["b"] = start(t, cfg("b"))
			leaderships := func() int64 { return relays["a"].Stats().Leaderships + relays["b"].Stats().Leaderships }

			const losses = 4
			for i := range losses + 1 {
				from := len(log.all())
				eventually(t, "the leader publishes", func() bool { return len(log.all()) >= from+10 })
				if i == losses {
					break
				}
				waitStandby(t, db.Pool)
				led := leaderships()
				holder := leaseHolder(t, db.Pool, outbox)
				var ok bool
				if err := db.Pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, int64(holder)).Scan(&ok); err != nil || !ok {
					t.Fatalf("loss %d: terminate the leader's lease session %d: %v %v", i+1, holder, ok, err)
				}
				eventually(t, "the standby takes over", func() bool { return leaderships() > led })
			}
			// (Stopping the leader first hands the leadership to the other
			// relay for a moment: one more leadership.)
			for name, r := range relays {
				if err := r.stop(t); err != nil {
					t.Errorf("%s: Run = %v", name, err)
				}
			}

			late, bad := log.afterLoss()
			runs := log.runs()
			t.Logf("%d publish calls (a %d, b %d); runs %v; leaderships %d; calls begun after the lease was lost: %d (past the first of their leadership: %d)", len(log.all()), log.n("a"), log.n("b"), runs, leaderships(), len(late), len(bad))
			if len(bad) > 0 {
				t.Errorf("%d publish calls began after their relay's lease was lost and after another such call; the first by %s: %v", len(bad), bad[0].relay, bad[0].cause)
			}
			if led := leaderships(); int64(len(runs)) > led || len(runs) < 2 {
				t.Errorf("calls by relay, in runs: %v; want at most one run per leadership (%d), and both relays: a relay that lost its lease published after the next leader began", runs, led)
			}
		})
	}
}

// waitStandby waits until a session of the test database waits for an
// advisory lock: a relay standing by.
func waitStandby(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	eventually(t, "a relay stands by", func() bool {
		var waiting int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
		return err == nil && waiting == 1
	})
}
