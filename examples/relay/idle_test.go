package relay_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
)

// A PublishTx transaction that sits idle longer than the lease's session
// timeout (as one whose offsets' save waits for a synchronous standby not
// back yet after a failover does) is ended by the server (SQLSTATE 25P03)
// and rolled back; the relay runs it again, as after a lock timeout, and
// every event reaches the sink once. (Before: Run returned the 25P03
// error.)
func TestIdleTimedOutTxRunsAgain(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	createSink(t, db.Pool)
	want := map[string]uint64{}
	appendEvents(t, pgjournal.New(db.Pool), want, streams("idle", 3), 1, 10)
	const d = time.Second
	var calls atomic.Int64
	handler := &logs{}
	r := start(t, relay.Config{Pool: db.Pool, Outbox: "idle", BatchSize: 5,
		LeaderOptions: []leader.Option{leader.WithSessionTimeout(d)}, Logger: slog.New(handler),
		PublishTx: func(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
			if err := sinkTx(ctx, tx, events); err != nil {
				return err
			}
			if calls.Add(1) == 1 {
				time.Sleep(d + d/2) // idle in the transaction past the bound
			}
			return nil
		}})
	eventually(t, "the transaction run again", func() bool { return r.Stats().SaveErrors > 0 })
	eventually(t, "every event relayed", func() bool { return r.Stats().IdlePasses > 0 && r.Stats().Published == 30 })
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	rows, dups, missing := sinkTally(t, db.Pool, "idle-")
	if rows != 30 || dups != 0 || missing != 0 {
		t.Fatalf("sink rows %d, duplicates %d, missing %d; want 30, 0, 0", rows, dups, missing)
	}
	if _, ok := handler.find(slog.LevelWarn, "sat idle too long"); !ok {
		t.Errorf("no warning logged")
	}
}
