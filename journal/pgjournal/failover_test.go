package pgjournal_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// warnOnInsert makes every insert into the journal of db raise a WARNING
// of SQLSTATE 01000, as the server's warning that it stopped waiting for
// the synchronous standbys is, and then succeed.
func warnOnInsert(t *testing.T, db *testdb.DB) {
	t.Helper()
	for _, q := range []string{
		`CREATE FUNCTION warn() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE WARNING 'as a cancelled wait for synchronous replication'; RETURN NEW; END $$`,
		`CREATE TRIGGER warn BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION warn()`,
	} {
		if _, err := db.Pool.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
}

func snapshotEvent(pid string, seq uint64) journal.Event {
	return journal.Event{PersistenceID: pid, SequenceNr: seq, Payload: []byte{1}, WriterUUID: "w"}
}

// A write committed with a warning that may say its wait for the
// synchronous standbys was cancelled is reported as not replicated on a
// pool ConfigurePool prepared (the write is there), and as written on one
// it did not prepare; a transaction's journal reports its commit so too.
func TestConfigurePoolWarningNotReplicated(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	warnOnInsert(t, db)
	ctx := t.Context()
	configured := db.NewPool(t, pgjournal.ConfigurePool)
	plain := db.NewPool(t, nil)

	err := pgjournal.New(configured).AppendNext(ctx, snapshotEvent("s", 1))
	if !errors.Is(err, journal.ErrNotReplicated) {
		t.Fatalf("AppendNext on a prepared pool, warned: %v, want ErrNotReplicated", err)
	}
	if hi, _ := pgjournal.New(plain).HighestSequenceNr(ctx, "s"); hi != 1 {
		t.Fatalf("highest = %d: the warned write must be there", hi)
	}
	if err := pgjournal.New(plain).AppendNext(ctx, snapshotEvent("s", 2)); err != nil {
		t.Fatalf("AppendNext on a pool not prepared, warned: %v, want nil (it cannot know)", err)
	}
	// A connection of its own, prepared with ConfigureConn.
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	pgjournal.ConfigureConn(cfg)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := pgjournal.New(conn).AppendNext(ctx, snapshotEvent("s", 3)); !errors.Is(err, journal.ErrNotReplicated) {
		t.Fatalf("AppendNext on a prepared connection, warned: %v, want ErrNotReplicated", err)
	}

	// A transaction: its journal reports the warning after the commit.
	for _, c := range []struct {
		pool *pgxpool.Pool
		want bool
	}{{configured, true}, {plain, false}} {
		tx, err := c.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tj := pgjournal.New(tx)
		if err := tj.Replicated(); err != nil {
			t.Fatalf("Replicated before anything: %v", err)
		}
		hi, _ := pgjournal.New(plain).HighestSequenceNr(ctx, "s")
		if err := tj.AppendNext(ctx, snapshotEvent("s", hi+1)); err != nil {
			t.Fatalf("AppendNext in a transaction: %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tj.Replicated(); errors.Is(err, journal.ErrNotReplicated) != c.want {
			t.Fatalf("Replicated after a warned transaction (prepared pool: %v): %v", c.want, err)
		}
	}
	// Without a warning, nothing is reported.
	if _, err := db.Pool.Exec(ctx, `DROP TRIGGER warn ON journal`); err != nil {
		t.Fatal(err)
	}
	if err := pgjournal.New(configured).AppendNext(ctx, snapshotEvent("s", 10)); err != nil {
		t.Fatalf("AppendNext on a prepared pool: %v", err)
	}
}

// A connection whose server refuses writes (25006, as on a demoted
// primary) is closed, so that the pool connects again: by AppendNext on
// any pool, and for every statement on a pool ConfigurePool prepared. On a
// pool it did not prepare, a plain statement keeps failing on the same
// connection.
func TestReadOnlyConnectionDropped(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	one := func(cfg *pgxpool.Config) { cfg.MaxConns = 1 }
	// readOnly makes the pool's one connection refuse writes, as the
	// sessions of a primary made read-only do, and returns its backend.
	readOnly := func(pool *pgxpool.Pool) uint32 {
		t.Helper()
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		if _, err := c.Exec(ctx, `SET default_transaction_read_only = on`); err != nil {
			t.Fatal(err)
		}
		return c.Conn().PgConn().PID()
	}
	backend := func(pool *pgxpool.Pool) uint32 {
		t.Helper()
		var pid uint32
		if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	is25006 := func(err error) bool {
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ReadOnlySQLTransaction
	}
	insert := func(pool *pgxpool.Pool, seq int) error {
		_, err := pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload) VALUES ('ro', $1, '')`, seq)
		return err
	}

	t.Run("AppendNext", func(t *testing.T) {
		pool := db.NewPool(t, one)
		was := readOnly(pool)
		err := pgjournal.New(pool).AppendNext(ctx, snapshotEvent("ro-next", 1))
		if !is25006(err) {
			t.Fatalf("AppendNext on a read-only session: %v, want 25006", err)
		}
		if now := backend(pool); now == was {
			t.Fatalf("the read-only connection (backend %d) is still in the pool", was)
		}
		if err := pgjournal.New(pool).AppendNext(ctx, snapshotEvent("ro-next", 1)); err != nil {
			t.Fatalf("AppendNext on the new connection: %v", err)
		}
	})
	t.Run("ConfigurePool", func(t *testing.T) {
		pool := db.NewPool(t, func(cfg *pgxpool.Config) { one(cfg); pgjournal.ConfigurePool(cfg) })
		was := readOnly(pool)
		if err := insert(pool, 1); !is25006(err) {
			t.Fatalf("insert on a read-only session: %v, want 25006", err)
		}
		if now := backend(pool); now == was {
			t.Fatalf("the read-only connection (backend %d) is still in the pool", was)
		}
		if err := insert(pool, 1); err != nil {
			t.Fatalf("insert on the new connection: %v", err)
		}
	})
	t.Run("NotConfigured", func(t *testing.T) {
		pool := db.NewPool(t, one)
		was := readOnly(pool)
		for range 3 {
			if err := insert(pool, 2); !is25006(err) {
				t.Fatalf("insert on a read-only session of a pool not prepared: %v, want 25006 again", err)
			}
		}
		if now := backend(pool); now != was {
			t.Fatalf("backend %d, want the same read-only one (%d): nothing drops it", now, was)
		}
	})
}

// ReadReplicated runs read on one connection and confirms only when asked;
// without synchronous standbys the confirmation returns at once. It
// refuses a transaction, and a connection inside one.
func TestReadReplicated(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	j := pgjournal.New(db.Pool)
	if err := j.AppendNext(ctx, snapshotEvent("r", 1)); err != nil {
		t.Fatal(err)
	}
	xacts := func() int64 {
		var n int64
		if err := db.Pool.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Transaction ids are the server's: a test running beside this one
	// (or autovacuum) takes some too, between the two reads, but only
	// ever adds. The fewest ids over a few tries is what the call took.
	for _, confirm := range []bool{false, true} {
		want := map[bool]int64{false: 1, true: 2}[confirm] // xacts() takes one too
		got := int64(math.MaxInt64)
		for try := 0; try < 10 && got > want; try++ {
			before := xacts()
			err := j.ReadReplicated(ctx, func(rj journal.Journal) (bool, error) {
				hi, err := rj.HighestSequenceNr(ctx, "r")
				if err != nil || hi != 1 {
					t.Errorf("highest %d, %v", hi, err)
				}
				return confirm, err
			})
			if err != nil {
				t.Fatalf("ReadReplicated (confirm %v): %v", confirm, err)
			}
			got = min(got, xacts()-before)
		}
		// The confirmation is a transaction with an id of its own.
		if got != want {
			t.Fatalf("confirm %v: %d transaction ids taken, want %d", confirm, got, want)
		}
	}
	boom := errors.New("boom")
	if err := j.ReadReplicated(ctx, func(journal.Journal) (bool, error) { return true, boom }); !errors.Is(err, boom) {
		t.Fatalf("read's error: %v", err)
	}
	if err := j.ReadReplicated(ctx, nil); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("nil read: %v", err)
	}

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := pgjournal.New(tx).ReadReplicated(ctx, func(journal.Journal) (bool, error) { return true, nil }); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("ReadReplicated on a transaction: %v, want ErrInvalidArgument", err)
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if err := pgjournal.New(conn).ReadReplicated(ctx, func(journal.Journal) (bool, error) { return true, nil }); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("ReadReplicated on a connection inside BEGIN: %v, want ErrInvalidArgument", err)
	}
}
