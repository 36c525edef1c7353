package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// txSetup is a database with a sink table and a store on it.
type txSetup struct {
	db *testdb.DB
	j  journal.Journal // the store's own journal
	s  *store.Store
}

func setupTx(t *testing.T, opts ...store.Option) *txSetup {
	t.Helper()
	db := testdb.New(t)
	if _, err := db.Pool.Exec(t.Context(), `CREATE TABLE sink (event text PRIMARY KEY)`); err != nil {
		t.Fatalf("create sink: %v", err)
	}
	j := pgjournal.New(db.Pool)
	return &txSetup{db: db, j: j, s: open(t, j, "tx", opts...)}
}

// relayTx runs the relay's transaction on pool: one sink row for event,
// then SaveTx with the transaction's commit, wrapped by wrapCommit when
// it is not nil.
func relayTx(ctx context.Context, pool *pgxpool.Pool, s *store.Store, event string, offsets map[string]uint64,
	wrapCommit func(commit func(context.Context) error) func(context.Context) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `INSERT INTO sink (event) VALUES ($1)`, event); err != nil {
		return err
	}
	commit := tx.Commit
	if wrapCommit != nil {
		commit = wrapCommit(commit)
	}
	return s.SaveTx(ctx, pgjournal.New(tx), offsets, commit)
}

func sinkRows(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT event FROM sink ORDER BY event`)
	if err != nil {
		t.Fatalf("read sink: %v", err)
	}
	evs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read sink: %v", err)
	}
	return evs
}

func wantSink(t *testing.T, pool *pgxpool.Pool, want ...string) {
	t.Helper()
	if got := sinkRows(t, pool); !slices.Equal(got, want) {
		t.Fatalf("sink rows = %q, want %q", got, want)
	}
}

func TestSaveTx(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTx)
}

func testSaveTx(t *testing.T) {

	t.Run("Commit", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		save(t, x.s, map[string]uint64{"a": 1, "b": 5})
		if err := relayTx(ctx, x.db.Pool, x.s, "e1", map[string]uint64{"a": 2, "b": 3, "c": 1}, nil); err != nil {
			t.Fatalf("SaveTx: %v", err)
		}
		want := map[string]uint64{"a": 2, "b": 5, "c": 1} // b stays: monotonic
		wantOffsets(t, load(t, x.s), want)
		wantOffsets(t, load(t, open(t, x.j, "tx")), want)
		wantSink(t, x.db.Pool, "e1")
		if x.s.SequenceNr() != 2 {
			t.Fatalf("SequenceNr = %d, want 2", x.s.SequenceNr())
		}
	})

	t.Run("Rollback", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		save(t, x.s, map[string]uint64{"a": 1})
		errAbort := errors.New("caller rolls back")
		err := relayTx(ctx, x.db.Pool, x.s, "e1", map[string]uint64{"a": 2}, func(func(context.Context) error) func(context.Context) error {
			return func(context.Context) error { return errAbort } // never commits; the deferred Rollback runs
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("SaveTx with a failing commit = %v, want its error", err)
		}
		wantOffsets(t, load(t, x.s), map[string]uint64{"a": 1})
		if got := highest(t, x.j, x.s.PersistenceID()); got != 1 {
			t.Fatalf("journal holds snapshot %d after a rollback, want 1", got)
		}
		wantSink(t, x.db.Pool)
		// The next write proceeds at the same sequence number.
		if err := relayTx(ctx, x.db.Pool, x.s, "e1", map[string]uint64{"a": 2}, nil); err != nil {
			t.Fatalf("SaveTx after a rollback: %v", err)
		}
		wantOffsets(t, load(t, open(t, x.j, "tx")), map[string]uint64{"a": 2})
		wantSink(t, x.db.Pool, "e1")
	})

	t.Run("CommitFails", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		// A deferred constraint is checked at COMMIT, which then fails.
		if _, err := x.db.Pool.Exec(ctx, `CREATE TABLE deferred (k int, CONSTRAINT once UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)`); err != nil {
			t.Fatal(err)
		}
		tx, err := x.db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `INSERT INTO deferred VALUES (1), (1)`); err != nil {
			t.Fatal(err)
		}
		err = x.s.SaveTx(ctx, pgjournal.New(tx), map[string]uint64{"a": 1}, tx.Commit)
		if err == nil {
			t.Fatal("SaveTx with a COMMIT that fails = nil")
		}
		wantOffsets(t, load(t, x.s), map[string]uint64{})
		if got := highest(t, x.j, x.s.PersistenceID()); got != 0 {
			t.Fatalf("journal holds snapshot %d after a failed commit", got)
		}
		save(t, x.s, map[string]uint64{"a": 1})
		if x.s.SequenceNr() != 1 {
			t.Fatalf("SequenceNr = %d after the next save, want 1", x.s.SequenceNr())
		}
	})

	t.Run("PanicInCommit", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		save(t, x.s, map[string]uint64{"a": 1})
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the panic did not reach the caller")
				}
			}()
			_ = relayTx(ctx, x.db.Pool, x.s, "e1", map[string]uint64{"a": 2}, func(func(context.Context) error) func(context.Context) error {
				return func(context.Context) error { panic("caller's commit panics") }
			})
		}()
		wantOffsets(t, load(t, x.s), map[string]uint64{"a": 1})
		wantSink(t, x.db.Pool)
		save(t, x.s, map[string]uint64{"a": 3}) // the semaphore was released
		wantOffsets(t, load(t, open(t, x.j, "tx")), map[string]uint64{"a": 3})
	})

	t.Run("NoChangeStillCommits", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		save(t, x.s, map[string]uint64{"a": 5})
		if err := relayTx(ctx, x.db.Pool, x.s, "e1", map[string]uint64{"a": 4}, nil); err != nil {
			t.Fatalf("SaveTx changing nothing: %v", err)
		}
		wantSink(t, x.db.Pool, "e1")
		if x.s.SequenceNr() != 1 {
			t.Fatalf("a SaveTx that changes nothing wrote snapshot %d", x.s.SequenceNr())
		}
	})

	t.Run("BadKeyRefusedBeforeAnyWrite", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		called := false
		err := relayTx(ctx, x.db.Pool, x.s, "e1", map[string]uint64{"ok": 1, "bad\xff": 1}, func(c func(context.Context) error) func(context.Context) error {
			return func(ctx context.Context) error { called = true; return c(ctx) }
		})
		if !errors.Is(err, store.ErrInvalidKey) || called {
			t.Fatalf("SaveTx with a bad key = %v (commit called %v), want ErrInvalidKey and no commit", err, called)
		}
		wantSink(t, x.db.Pool)
		if got := highest(t, x.j, x.s.PersistenceID()); got != 0 {
			t.Fatalf("journal holds snapshot %d", got)
		}
	})

	t.Run("FencedBySecondWriter", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		save(t, x.s, map[string]uint64{"a": 1})
		peer := open(t, x.j, "tx", store.WithWriterID("peer-relay"))
		save(t, peer, map[string]uint64{"a": 7})
		called := false
		err := relayTx(ctx, x.db.Pool, x.s, "e1", map[string]uint64{"a": 2}, func(c func(context.Context) error) func(context.Context) error {
			return func(ctx context.Context) error { called = true; return c(ctx) }
		})
		var f *store.FencedError
		if !errors.Is(err, store.ErrFenced) || !errors.As(err, &f) || f.Writer != "peer-relay" || called {
			t.Fatalf("SaveTx behind a peer = %v (commit called %v), want ErrFenced by peer-relay before commit", err, called)
		}
		wantSink(t, x.db.Pool) // rolled back with the offsets
		wantOffsets(t, load(t, x.s), map[string]uint64{"a": 1})
		if err := x.s.Save(ctx, map[string]uint64{"a": 3}); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Save after a fenced SaveTx = %v, want ErrFenced", err)
		}
	})

	t.Run("ConcurrentWithSave", func(t *testing.T) {
		t.Parallel()
		x := setupTx(t)
		ctx := t.Context()
		// The callers' transactions on a pool of their own: a transaction
		// waiting for the store holds its connection, and the store's own
		// writes must not wait for a connection behind it.
		txPool := x.db.NewPool(t, nil)
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				errs <- relayTx(ctx, txPool, x.s, fmt.Sprintf("e%02d", i), map[string]uint64{"tx": uint64(i + 1)}, nil)
			}()
			go func() {
				defer wg.Done()
				errs <- x.s.Save(ctx, map[string]uint64{"plain": uint64(i + 1)})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent write: %v", err)
			}
		}
		want := map[string]uint64{"tx": n, "plain": n}
		wantOffsets(t, load(t, x.s), want)
		wantOffsets(t, load(t, open(t, x.j, "tx")), want)
		if got := len(sinkRows(t, x.db.Pool)); got != n {
			t.Fatalf("%d sink rows, want %d", got, n)
		}
		evs := rows(t, x.j, x.s.PersistenceID())
		if last := evs[len(evs)-1].SequenceNr; last != x.s.SequenceNr() {
			t.Fatalf("newest row %d, store at %d", last, x.s.SequenceNr())
		}
	})
}

// TestSaveTxCommitCut cuts the connection right after COMMIT reached the
// server: the transaction committed, the client never heard of it. The
// save is in doubt, and the next write resolves it.
func TestSaveTxCommitCut(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTxCommitCut)
}

func testSaveTxCommitCut(t *testing.T) {

	// The store's own journal could read the row at once, but the save is
	// recorded only when commit returns nil: in doubt until the next write,
	// which adopts it.
	for _, next := range []string{"Save", "SaveTx"} {
		t.Run("ResolvedAtNext"+next, func(t *testing.T) {
			t.Parallel()
			x := setupTx(t)
			ctx := t.Context()
			s := open(t, x.j, "cut")
			pool, proxy := viaProxy(t, x.db)
			proxy.DropReplyAfter([]byte("commit"))
			err := relayTx(ctx, pool, s, "e1", map[string]uint64{"a": 1}, nil)
			if !errors.Is(err, store.ErrInDoubt) || errors.Is(err, store.ErrFenced) || proxy.Dropped.Load() != 1 {
				t.Fatalf("SaveTx with a cut COMMIT = %v (dropped %d), want ErrInDoubt", err, proxy.Dropped.Load())
			}
			wantOffsets(t, load(t, s), map[string]uint64{}) // never ahead of what is known
			wantSink(t, x.db.Pool, "e1")                    // it did commit
			switch next {
			case "Save":
				save(t, s, map[string]uint64{"b": 2})
				wantOffsets(t, load(t, s), map[string]uint64{"a": 1, "b": 2})
			case "SaveTx":
				// The relay, not knowing, runs event e1 again: the store
				// finds its own earlier transaction and asks for a retry.
				err := relayTx(ctx, x.db.Pool, s, "e1-again", map[string]uint64{"a": 1}, nil)
				if !errors.Is(err, store.ErrRetryTx) || errors.Is(err, store.ErrFenced) {
					t.Fatalf("SaveTx after an adopted commit = %v, want ErrRetryTx", err)
				}
				wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
				wantSink(t, x.db.Pool, "e1") // the retried transaction was not committed
				// Run again from Load: nothing left to do for e1, the next event goes on.
				if err := relayTx(ctx, x.db.Pool, s, "e2", map[string]uint64{"a": 2}, nil); err != nil {
					t.Fatalf("SaveTx after the retry: %v", err)
				}
				wantSink(t, x.db.Pool, "e1", "e2")
			}
			if st := s.Stats(); st.Adopted != 1 {
				t.Fatalf("Adopted = %d, want 1", st.Adopted)
			}
		})
	}
}
