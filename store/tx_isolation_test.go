package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// beginWithSnapshot begins a transaction at iso on x's pool and writes
// its sink row e1, which takes the transaction's snapshot. It is rolled
// back at the end of the test unless committed.
func beginWithSnapshot(t *testing.T, x *txSetup, iso pgx.TxIsoLevel) pgx.Tx {
	t.Helper()
	tx, err := x.db.Pool.BeginTx(t.Context(), pgx.TxOptions{IsoLevel: iso})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), `INSERT INTO sink (event) VALUES ('e1')`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// peerTakesOver is another relay, "peer-relay", taking outbox over on j:
// it saves a = 7, 8 and 9, pruning after each save, so that the rows a
// stale store would write next are gone.
func peerTakesOver(t *testing.T, j journal.Journal, outbox string) {
	t.Helper()
	peer := open(t, j, outbox, store.WithWriterID("peer-relay"), store.WithPruneInterval(1))
	for v := uint64(7); v < 10; v++ {
		save(t, peer, map[string]uint64{"a": v})
	}
}

// wantSaveTxOutcome runs SaveTx of {"a": 2} through j, bound to tx, with
// tx's commit, and checks its outcome. fence: ErrFenced by peer-relay
// before commit, and the sink row rolled back; otherwise nil, commit
// called, and the sink row e1 committed. Either way a store opened afresh
// loads want. what names the case in failures.
func wantSaveTxOutcome(t *testing.T, x *txSetup, tx pgx.Tx, j journal.Journal, fence bool, want map[string]uint64, what string) {
	t.Helper()
	ctx := t.Context()
	called := false
	err := x.s.SaveTx(ctx, j, map[string]uint64{"a": 2}, func(ctx context.Context) error {
		called = true
		return tx.Commit(ctx)
	})
	if fence {
		var f *store.FencedError
		if !errors.Is(err, store.ErrFenced) || !errors.As(err, &f) || f.Writer != "peer-relay" || called {
			t.Fatalf("%s = %v (commit called %v), want ErrFenced by peer-relay before commit", what, err, called)
		}
		_ = tx.Rollback(ctx)
		wantSink(t, x.db.Pool)
	} else {
		if err != nil || !called {
			t.Fatalf("%s = %v (commit called %v), want nil", what, err, called)
		}
		wantSink(t, x.db.Pool, "e1")
	}
	wantOffsets(t, load(t, open(t, x.j, "tx")), want)
}

// TestSaveTxRepeatableReadFenced is a stale writer whose caller's
// transaction is REPEATABLE READ and took its snapshot before a peer
// saved three times and pruned the row the stale writer would take. The
// stale SaveTx must not commit (its sink rows would then be published a
// second time by the peer): ErrFenced before commit, and the sink row
// rolled back.
func TestSaveTxRepeatableReadFenced(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTxRepeatableReadFenced)
}

func testSaveTxRepeatableReadFenced(t *testing.T) {
	for _, iso := range []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) {
			t.Parallel()
			x := setupTx(t)
			ctx := t.Context()
			save(t, x.s, map[string]uint64{"a": 1})
			tx := beginWithSnapshot(t, x, iso)
			peerTakesOver(t, x.j, "tx")
			if got := highest(t, x.j, x.s.PersistenceID()); got != 4 {
				t.Fatalf("peer left highest %d, want 4", got)
			}
			wantSaveTxOutcome(t, x, tx, pgjournal.New(tx), true, map[string]uint64{"a": 9}, fmt.Sprintf("stale SaveTx in a %s transaction", iso))
			if err := x.s.Save(ctx, map[string]uint64{"a": 3}); !errors.Is(err, store.ErrFenced) {
				t.Fatalf("Save after the stale SaveTx = %v, want ErrFenced", err)
			}
		})
	}
}

// TestSaveTxRepeatableReadBehindOwnSaves is a REPEATABLE READ transaction
// whose snapshot is older than this store's own later saves, pruned or
// not: the rows it cannot see are this store's, below its number, and its
// SaveTx commits on top of them.
func TestSaveTxRepeatableReadBehindOwnSaves(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTxRepeatableReadBehindOwnSaves)
}

func testSaveTxRepeatableReadBehindOwnSaves(t *testing.T) {
	for _, prune := range []bool{false, true} {
		t.Run(fmt.Sprintf("pruned=%v", prune), func(t *testing.T) {
			t.Parallel()
			opt := store.WithoutPruning()
			if prune {
				opt = store.WithPruneInterval(1)
			}
			x := setupTx(t, opt)
			ctx := t.Context()
			save(t, x.s, map[string]uint64{"a": 1})
			tx := beginWithSnapshot(t, x, pgx.RepeatableRead)
			for v := uint64(2); v < 5; v++ {
				save(t, x.s, map[string]uint64{"a": v})
			}
			if err := x.s.SaveTx(ctx, pgjournal.New(tx), map[string]uint64{"a": 9}, tx.Commit); err != nil {
				t.Fatalf("SaveTx over own later saves = %v, want nil", err)
			}
			wantSink(t, x.db.Pool, "e1")
			wantOffsets(t, load(t, x.s), map[string]uint64{"a": 9})
			wantOffsets(t, load(t, open(t, x.j, "tx")), map[string]uint64{"a": 9})
			if got := x.s.SequenceNr(); got != 5 {
				t.Fatalf("SequenceNr = %d, want 5", got)
			}
		})
	}
}

// TestSaveTxRepeatableReadFirstSnapshot is the stale writer whose
// REPEATABLE READ snapshot holds no row of the outbox at all: a peer saved
// three times and pruned its first snapshot, the one the stale store would
// write. The store checks the head outside the transaction and is fenced
// before commit. Without a peer, and after only this store's own save,
// the same SaveTx commits.
func TestSaveTxRepeatableReadFirstSnapshot(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTxRepeatableReadFirstSnapshot)
}

func testSaveTxRepeatableReadFirstSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peer  bool
		own   bool
		fence bool
	}{
		{name: "PeerSavedAndPruned", peer: true, fence: true},
		{name: "NoPeer"},
		{name: "OwnSaveSince", own: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x := setupTx(t)
			tx := beginWithSnapshot(t, x, pgx.RepeatableRead)
			want := map[string]uint64{"a": 2}
			if tc.peer {
				peerTakesOver(t, x.j, "tx")
				want = map[string]uint64{"a": 9}
			}
			if tc.own {
				save(t, x.s, map[string]uint64{"b": 1})
				want = map[string]uint64{"a": 2, "b": 1}
			}
			wantSaveTxOutcome(t, x, tx, pgjournal.New(tx), tc.fence, want, "first SaveTx")
		})
	}
}

// TestSaveTxPlainJournalRepeatableReadFenced is the stale writer of
// TestSaveTxRepeatableReadFenced through a transaction's journal that has
// no AppendNext (a wrapper that does not forward it): the store appends
// plainly and then reads the head. Read through the transaction, whose
// snapshot predates the peer's saves, that head would look like the
// store's own; the store reads it outside, and is fenced before commit.
// At READ COMMITTED the same SaveTx of a store that is not stale commits.
func TestSaveTxPlainJournalRepeatableReadFenced(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTxPlainJournalRepeatableReadFenced)
}

func testSaveTxPlainJournalRepeatableReadFenced(t *testing.T) {
	for _, tc := range []struct {
		iso   pgx.TxIsoLevel
		peer  bool
		fence bool
	}{
		{iso: pgx.RepeatableRead, peer: true, fence: true},
		{iso: pgx.Serializable, peer: true, fence: true},
		{iso: pgx.RepeatableRead},
		{iso: pgx.ReadCommitted},
	} {
		t.Run(fmt.Sprintf("%s/peer=%v", tc.iso, tc.peer), func(t *testing.T) {
			t.Parallel()
			x := setupTx(t)
			save(t, x.s, map[string]uint64{"a": 1})
			tx := beginWithSnapshot(t, x, tc.iso)
			want := map[string]uint64{"a": 2}
			if tc.peer {
				peerTakesOver(t, x.j, "tx")
				want = map[string]uint64{"a": 9}
			}
			wantSaveTxOutcome(t, x, tx, &plainJournal{Journal: pgjournal.New(tx)}, tc.fence, want,
				fmt.Sprintf("SaveTx through a plain journal in a %s transaction", tc.iso))
		})
	}
}

// TestSaveTxPlainJournalNotHeldBack is SaveTx given a journal without
// AppendNext whose writes are not held back until commit (the store's own
// pool, wrapped): its row, read outside before commit, is the store's
// own. That tx is refused as an invalid argument, commit is not called,
// and the row, durable all the same, is adopted by the next save.
func TestSaveTxPlainJournalNotHeldBack(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTxPlainJournalNotHeldBack)
}

func testSaveTxPlainJournalNotHeldBack(t *testing.T) {
	x := setupTx(t)
	save(t, x.s, map[string]uint64{"a": 1})
	called := false
	err := x.s.SaveTx(t.Context(), &plainJournal{Journal: x.j}, map[string]uint64{"a": 2}, func(context.Context) error {
		called = true
		return nil
	})
	if !errors.Is(err, journal.ErrInvalidArgument) || called {
		t.Fatalf("SaveTx through a plain journal on the pool = %v (commit called %v), want ErrInvalidArgument before commit", err, called)
	}
	wantOffsets(t, load(t, x.s), map[string]uint64{"a": 1})
	save(t, x.s, map[string]uint64{"b": 3})
	wantOffsets(t, load(t, x.s), map[string]uint64{"a": 2, "b": 3})
	wantOffsets(t, load(t, open(t, x.j, "tx")), map[string]uint64{"a": 2, "b": 3})
	if got := x.s.SequenceNr(); got != 3 {
		t.Fatalf("SequenceNr = %d, want 3 (the refused row adopted, then the save)", got)
	}
}
