package failover_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// newPool opens a pool on url whose sessions are named app
// (application_name, as pg_stat_activity shows it), prepared with
// pgjournal.ConfigurePool unless plain, then changed by configure when it
// is not nil. It is closed when t ends.
func newPool(t *testing.T, url, app string, plain bool, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	if !plain {
		pgjournal.ConfigurePool(cfg)
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// unconfirmed is a journal with every optional interface the store uses
// but journal.ReplicatedReader: a store on it adopts a row it reads back
// without confirming it on the standby, as the store did before.
type unconfirmed struct {
	journal.Journal
	journal.NextAppender
	journal.HeadReader
	journal.ChainReader
}

func hideConfirmation(j *pgjournal.Journal) journal.Journal { return unconfirmed{j, j, j, j} }

// adminConn connects to the server at url for syncWaiter and
// signalBackend, closed when t ends.
func adminConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// syncWaiter returns the backend of the session named app that waits for
// the synchronous standby (wait event SyncRep) on c's server, waiting
// until one does.
func syncWaiter(ctx context.Context, c *pgx.Conn, app string) (int32, error) {
	for {
		var pid int32
		err := c.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'SyncRep' LIMIT 1`, app).Scan(&pid)
		if err == nil {
			return pid, nil
		}
		if err != pgx.ErrNoRows {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no session %q waits for the standby: %w", app, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// signalBackend runs fn (pg_terminate_backend or pg_cancel_backend) on
// pid on c's server.
func signalBackend(ctx context.Context, c *pgx.Conn, fn string, pid int32) error {
	var ok bool
	if err := c.QueryRow(ctx, `SELECT `+fn+`($1)`, pid).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s(%d): no such backend", fn, pid)
	}
	return nil
}

// loadFresh opens outbox afresh on the server at url, as a restarted
// relay would, and returns its offsets and sequence number.
func loadFresh(ctx context.Context, url, outbox string) (map[string]uint64, uint64, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close(context.Background())
	s, err := store.Open(ctx, pgjournal.New(c), outbox)
	if err != nil {
		return nil, 0, err
	}
	m, err := s.Load(ctx)
	return m, s.SequenceNr(), err
}

// sinkRows returns the sequence numbers of pid in the sink table on the
// server at url, in order.
func sinkRows(ctx context.Context, url, sink, pid string) ([]uint64, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT seq FROM `+sink+` WHERE pid = $1 ORDER BY seq`, pid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uint64])
}
