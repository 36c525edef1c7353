package store

import (
	"context"
	"fmt"

	"github.com/outboxkit/offsetstore/journal"
)

// Adoption and synchronous standbys.
//
// A write whose outcome is unknown (its reply lost, its session ended, its
// wait for the synchronous standbys cancelled) may have committed on the
// primary and be visible there, yet be missing from the standby that a
// failover promotes: PostgreSQL keeps a commit whose wait for the standbys
// was cancelled. Reading the row back is then not enough to acknowledge
// it. When the store's journal can confirm replication
// (journal.ReplicatedReader), every adoption reads the row and confirms it
// on the same connection (a later synchronous commit on the same server
// covers every earlier one); a failed confirmation leaves the write in
// doubt (ErrInDoubt), to be settled at the next write. Decisions that
// acknowledge nothing (fencing, a retry after a rollback) need no
// confirmation. A journal without it (a single server, the memory
// journal) adopts on the read alone, as before.

// confirmedRead runs read through the store's journal, and, when read
// asks for it (confirm true), confirms what it read on the synchronous
// standbys. readErr is read's error, or the journal's before read could
// run; confirmErr is the confirmation's, set only when read asked for one
// and it failed: the rows read are then not known to be replicated.
func (s *Store) confirmedRead(ctx context.Context, read func(j journal.Journal) (confirm bool, err error)) (confirmErr, readErr error) {
	rr, ok := s.j.(journal.ReplicatedReader)
	if !ok {
		_, readErr = read(s.j)
		return nil, readErr
	}
	ran, asked := false, false
	err := rr.ReadReplicated(ctx, func(j journal.Journal) (bool, error) {
		ran = true
		c, err := read(j)
		asked = c && err == nil
		return c, err
	})
	switch {
	case err == nil:
		return nil, nil
	case !ran || !asked:
		return nil, err
	}
	return err, nil
}

// notConfirmed is the error of an adoption whose confirmation failed: the
// store's own row at seq is on the primary, not known to be on its
// synchronous standbys. The write stays in doubt.
func (s *Store) notConfirmed(op string, seq uint64, err error) error {
	return markInDoubt(fmt.Errorf("store: %s %q: snapshot %d of this store is committed on the server, but not confirmed on its synchronous standbys (in doubt; it is checked at the next write): %w", op, s.outbox, seq, err))
}
