package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// unverifiedJournal reports journal.ErrUnverified from its next AppendNext
// when report is set: having appended (write true), as a journal does whose
// check read an old snapshot, or having appended nothing (write false), as
// an implicit transaction whose commit failed after its insert replied.
type unverifiedJournal struct {
	journal.Journal
	report, write bool
}

func (u *unverifiedJournal) AppendNext(ctx context.Context, ev journal.Event) error {
	if !u.report {
		return u.Journal.(journal.NextAppender).AppendNext(ctx, ev)
	}
	u.report = false
	if u.write {
		if err := u.Journal.(journal.NextAppender).AppendNext(ctx, ev); err != nil {
			return err
		}
	}
	return fmt.Errorf("test: %w", journal.ErrUnverified)
}

// A Save whose append reports journal.ErrUnverified is recorded only when
// the head read after it is the store's own row; when the row is not there
// the save fails as a write in doubt, Load keeps the offsets before it, and
// the next save resolves it and proceeds.
func TestSaveUnverifiedAppend(t *testing.T) {
	t.Parallel()
	for _, write := range []bool{true, false} {
		t.Run(fmt.Sprintf("appended=%v", write), func(t *testing.T) {
			t.Parallel()
			u := &unverifiedJournal{Journal: journal.NewMemory()}
			s := open(t, u, "u")
			save(t, s, map[string]uint64{"a": 1})
			u.report, u.write = true, write
			err := s.Save(t.Context(), map[string]uint64{"a": 2})
			if write {
				if err != nil {
					t.Fatalf("Save of an unverified append that landed = %v, want nil", err)
				}
				wantOffsets(t, load(t, s), map[string]uint64{"a": 2})
			} else {
				if !errors.Is(err, store.ErrInDoubt) || errors.Is(err, journal.ErrUnverified) {
					t.Fatalf("Save of an unverified append with no row = %v, want ErrInDoubt (and no longer ErrUnverified)", err)
				}
				wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
			}
			save(t, s, map[string]uint64{"a": 3})
			wantOffsets(t, load(t, open(t, u.Journal, "u")), map[string]uint64{"a": 3})
			if got, want := s.SequenceNr(), map[bool]uint64{true: 3, false: 2}[write]; got != want {
				t.Fatalf("SequenceNr = %d, want %d", got, want)
			}
		})
	}
}
