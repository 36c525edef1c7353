package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// errReplyLost is a commit whose transaction committed but whose reply
// never came: with the in-memory journal as the transaction's journal,
// the row is there already.
var errReplyLost = errors.New("test: the connection died during COMMIT")

// inDoubtSaveTx runs SaveTx of offsets on a journal that writes at once,
// with a commit that fails: the row is durable, the save is in doubt.
func inDoubtSaveTx(t *testing.T, s *store.Store, j journal.Journal, offsets map[string]uint64) {
	t.Helper()
	err := s.SaveTx(t.Context(), j, offsets, func(context.Context) error { return errReplyLost })
	if !errors.Is(err, errReplyLost) || !errors.Is(err, store.ErrInDoubt) {
		t.Fatalf("SaveTx with a lost COMMIT reply = %v, want its error, matching ErrInDoubt", err)
	}
}

// A Forget, Rewind or Replace that changes nothing against the snapshot
// the store holds, after a write of its own that is in doubt and did
// commit, applies to that write: it is adopted first, and the change is
// built on top of it, not dropped as a no-op.
func TestNoChangeAfterWriteInDoubt(t *testing.T) {
	t.Parallel()
	bothModes(t, testNoChangeAfterWriteInDoubt)
}

func testNoChangeAfterWriteInDoubt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		doubt map[string]uint64 // the write in doubt, after {"a": 1}
		op    func(ctx context.Context, s *store.Store) error
	}{
		{"Forget", map[string]uint64{"b": 7}, func(ctx context.Context, s *store.Store) error { return s.Forget(ctx, "b") }},
		{"Rewind", map[string]uint64{"a": 5}, func(ctx context.Context, s *store.Store) error {
			return s.Rewind(ctx, map[string]uint64{"a": 1})
		}},
		{"Replace", map[string]uint64{"b": 7}, func(ctx context.Context, s *store.Store) error {
			return s.Replace(ctx, map[string]uint64{"a": 1})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := journal.NewMemory()
			s := open(t, j, "doubt")
			save(t, s, map[string]uint64{"a": 1})
			inDoubtSaveTx(t, s, j, tc.doubt)
			wantOffsets(t, load(t, s), map[string]uint64{"a": 1}) // memory follows the commit's answer
			if err := tc.op(t.Context(), s); err != nil {
				t.Fatalf("%s after a write in doubt: %v", tc.name, err)
			}
			want := map[string]uint64{"a": 1}
			wantOffsets(t, load(t, s), want)
			wantOffsets(t, load(t, open(t, j, "doubt")), want)
			if st := s.Stats(); st.Adopted != 1 {
				t.Fatalf("Adopted = %d, want 1", st.Adopted)
			}
		})
	}
}

// A change that changes nothing, while a write in doubt did not commit,
// writes the unchanged snapshot at that write's number: the doubt is over
// for good (the write, had it still been committing, would have been
// waited for and adopted instead), and nothing else changes.
func TestNoChangeAfterWriteInDoubtNotCommitted(t *testing.T) {
	t.Parallel()
	bothModes(t, testNoChangeAfterWriteInDoubtNotCommitted)
}

func testNoChangeAfterWriteInDoubtNotCommitted(t *testing.T) {
	j := journal.NewMemory()
	s := open(t, j, "doubt")
	save(t, s, map[string]uint64{"a": 1})
	inDoubtSaveTx(t, s, detached(t, j, s), map[string]uint64{"b": 7}) // its rows never reach j
	if err := s.Forget(t.Context(), "zzz"); err != nil {
		t.Fatalf("Forget of an unknown key while in doubt: %v", err)
	}
	if got := s.SequenceNr(); got != 2 {
		t.Fatalf("SequenceNr = %d, want 2 (the unchanged snapshot took the number in doubt)", got)
	}
	if st := s.Stats(); st.Adopted != 0 {
		t.Fatalf("Adopted = %d, want 0", st.Adopted)
	}
	wantOffsets(t, load(t, open(t, j, "doubt")), map[string]uint64{"a": 1})
	if err := s.Forget(t.Context(), "zzz"); err != nil || s.SequenceNr() != 2 {
		t.Fatalf("a second Forget of nothing = %v at %d, want nil and nothing written", err, s.SequenceNr())
	}
}

// A commit that commits and then panics leaves the save in doubt: the
// next write adopts the row as the store's own instead of taking it for
// another writer's.
func TestSaveTxPanicAfterCommit(t *testing.T) {
	t.Parallel()
	bothModes(t, testSaveTxPanicAfterCommit)
}

func testSaveTxPanicAfterCommit(t *testing.T) {
	j := journal.NewMemory()
	s := open(t, j, "panic")
	save(t, s, map[string]uint64{"a": 1})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		_ = s.SaveTx(t.Context(), j, map[string]uint64{"b": 7}, func(context.Context) error { panic("after COMMIT") })
	}()
	wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
	if err := s.Save(t.Context(), map[string]uint64{"c": 1}); err != nil {
		t.Fatalf("Save after a commit that panicked having committed = %v, want nil (adopted)", err)
	}
	want := map[string]uint64{"a": 1, "b": 7, "c": 1}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, load(t, open(t, j, "panic")), want)
}

// detached returns a journal holding a copy of the rows of s's outbox in
// j: the view of a transaction whose writes never reach j.
func detached(t *testing.T, j journal.Journal, s *store.Store) journal.Journal {
	t.Helper()
	d := journal.NewMemory()
	if evs := rows(t, j, s.PersistenceID()); len(evs) > 0 {
		if err := d.Append(t.Context(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	return d
}
