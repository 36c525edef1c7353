package pgjournal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// The handles TxBeginner is meant for.
var (
	_ pgjournal.TxBeginner = (*pgxpool.Pool)(nil)
	_ pgjournal.TxBeginner = (*pgx.Conn)(nil)
)

// settings reads the bounded settings (and the isolation level) through q.
func settings(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) [7]string {
	t.Helper()
	var s [7]string
	err := q.QueryRow(t.Context(), `SELECT current_setting('idle_in_transaction_session_timeout'), current_setting('lock_timeout'),
  current_setting('tcp_user_timeout'), current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'),
  current_setting('tcp_keepalives_count'), current_setting('transaction_isolation')`).Scan(&s[0], &s[1], &s[2], &s[3], &s[4], &s[5], &s[6])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BeginBounded sets its bounds for the transaction alone, with the
// transaction's options; the connection has its own settings again after
// the commit, and after a rollback.
func TestBeginBoundedSettings(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	conn, err := db.Pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	c := conn.Conn()
	before := settings(t, c)
	b := pgjournal.TxBounds{IdleTimeout: 1500 * time.Millisecond, LockTimeout: 2 * time.Second, PeerTimeout: 10 * time.Second}
	for _, end := range []string{"commit", "rollback"} {
		tx, err := pgjournal.BeginBounded(t.Context(), c, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, b)
		if err != nil {
			t.Fatal(err)
		}
		got := settings(t, tx)
		want := [7]string{"1500ms", "2s", "10000", "2", "2", "3", "repeatable read"}
		if got != want {
			t.Errorf("in the transaction: %q, want %q", got, want)
		}
		if end == "commit" {
			err = tx.Commit(t.Context())
		} else {
			err = tx.Rollback(t.Context())
		}
		if err != nil {
			t.Fatal(err)
		}
		if after := settings(t, c); after != before {
			t.Errorf("after %s: %q, want the session's %q", end, after, before)
		}
	}
}

// A transaction left idle longer than IdleTimeout loses its session: the
// server rolls it back and frees its locks (here: the stream lock that
// AppendNext takes), so the next writer of the stream goes on.
func TestBeginBoundedIdleTimeoutFreesLocks(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	tx, err := pgjournal.BeginBounded(t.Context(), db.Pool, pgx.TxOptions{}, pgjournal.TxBounds{IdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	ev := journal.Event{PersistenceID: "outbox::idle::offsets", SequenceNr: 1, Payload: []byte{0, 0, 0, 0}}
	// The transaction goes idle after t0: the server cannot end it
	// before t0 + 300ms, however late this goroutine runs.
	t0 := time.Now()
	if err := pgjournal.New(tx).AppendNext(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	// A second writer of the stream waits for the idle transaction's
	// lock until the server ends it.
	began := time.Now()
	ev.SequenceNr = 2
	if err := pgjournal.New(db.Pool).AppendNext(t.Context(), ev); err != nil {
		t.Fatalf("the second writer: %v", err)
	}
	waited, sinceIdle := time.Since(began), time.Since(t0)
	t.Logf("the second writer waited %v (%v since the transaction's write began)", waited, sinceIdle)
	if sinceIdle < 300*time.Millisecond || waited > 5*time.Second {
		t.Errorf("the second writer went on %v after the transaction's write began, having waited %v; want after the idle timeout (300ms), within a few seconds", sinceIdle, waited)
	}
	_, err = tx.Exec(t.Context(), `SELECT 1`)
	var pgErr *pgconn.PgError
	if err == nil || (errors.As(err, &pgErr) && pgErr.Code != "25P03") {
		t.Fatalf("the idle transaction's next statement: %v; want its session ended (25P03 or a closed connection)", err)
	}
	if highest, err := pgjournal.New(db.Pool).HighestSequenceNr(t.Context(), ev.PersistenceID); err != nil || highest != 2 {
		t.Fatalf("highest %d, %v; want 2 (the idle transaction's row rolled back, the second writer's committed)", highest, err)
	}
}

func TestBeginBoundedInvalid(t *testing.T) {
	t.Parallel()
	var nilPool *pgxpool.Pool
	pool := &pgxpool.Pool{} // never used: every case fails before I/O
	for name, c := range map[string]struct {
		db   pgjournal.TxBeginner
		opts pgx.TxOptions
		b    pgjournal.TxBounds
	}{
		"nil handle":        {db: nilPool},
		"negative bound":    {db: pool, b: pgjournal.TxBounds{LockTimeout: -time.Second}},
		"unknown isolation": {db: pool, opts: pgx.TxOptions{IsoLevel: "chaos; DROP TABLE journal"}},
		"unknown access":    {db: pool, opts: pgx.TxOptions{AccessMode: "write only"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := pgjournal.BeginBounded(t.Context(), c.db, c.opts, c.b); !errors.Is(err, journal.ErrInvalidArgument) {
				t.Fatalf("BeginBounded: %v, want ErrInvalidArgument", err)
			}
		})
	}
}
