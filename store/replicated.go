package store

import (
	"bytes"
	"context"
	"errors"
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
// journal), or one that cannot confirm on its handle (pgjournal on a
// transaction or on a DBTX of the caller's own: ReadReplicated refuses it
// as an invalid argument before reading), adopts on the read alone, as
// before.

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
	case !ran && errors.Is(err, journal.ErrInvalidArgument):
		// The journal confirms on some handles only (pgjournal: a pool or
		// a connection, not a transaction or a DBTX of the caller's own):
		// on this one it cannot, so read as a journal without it does.
		_, readErr = read(s.j)
		return nil, readErr
	case !ran || !asked:
		return nil, err
	}
	return err, nil
}

// confirmOpened confirms, before the first write after Open, that the
// snapshot Open loaded is on the synchronous standbys of the server the
// write goes to: Open may have read a row whose commit's wait for the
// standbys was cancelled (another writer's, or an earlier process's), and a
// failover since would have lost it. Writing on top of it then (a delta
// whose base is gone, a SaveTx whose offsets include transactions the
// promoted server does not have) would break the chain or lose a sink's
// rows. One read and one synchronous commit, once per Open, on journals
// that confirm (journal.ReplicatedReader) and outboxes that had rows.
//
// When the server's newest row is below the one Open loaded, or at its
// number but another row (written by another writer after it was lost),
// that row is gone: the write fails with ErrOpenedSnapshotLost, writing
// nothing. When
// it is above, another writer moved on, and the write fences the store as
// usual.
func (s *Store) confirmOpened(ctx context.Context, op string) error {
	if s.openConfirmed {
		return nil
	}
	if _, ok := s.j.(journal.ReplicatedReader); !ok || s.seq == 0 {
		s.openConfirmed, s.opened = true, journal.Event{}
		return nil
	}
	var h journal.Head
	confirmErr, err := s.confirmedRead(ctx, func(j journal.Journal) (bool, error) {
		var err error
		h, err = journal.ReadHead(ctx, j, s.pid)
		return err == nil && h.Highest == s.seq && !s.replacedSinceOpen(h), err
	})
	switch {
	case err != nil:
		return fmt.Errorf("store: %s %q: nothing written: reading the stream's head to confirm snapshot %d, loaded at open: %w", op, s.outbox, s.seq, err)
	case confirmErr != nil:
		return fmt.Errorf("store: %s %q: nothing written: snapshot %d, loaded at open, is not confirmed on the synchronous standbys: %w", op, s.outbox, s.seq, confirmErr)
	case h.Highest < s.seq:
		return fmt.Errorf("store: %s %q: nothing written: the newest snapshot is %d, below %d loaded at open: %w", op, s.outbox, h.Highest, s.seq, ErrOpenedSnapshotLost)
	case h.Highest == s.seq && s.replacedSinceOpen(h):
		// The same number, another row: the one loaded was lost, and a
		// writer wrote that number again since.
		return fmt.Errorf("store: %s %q: nothing written: snapshot %d is not the row loaded at open (another writer's, %q, written after it was lost): %w", op, s.outbox, s.seq, h.Last.WriterUUID, ErrOpenedSnapshotLost)
	}
	s.openConfirmed, s.opened = true, journal.Event{}
	return nil
}

// replacedSinceOpen reports whether h's newest live row is another row
// than the one Open loaded, at its number or above (a live row where Open
// loaded none): written after the one loaded was lost. A newest live row
// below it (the one loaded was marked deleted since) is not.
func (s *Store) replacedSinceOpen(h journal.Head) bool {
	o := &s.opened
	if !h.HasLast || h.Last.SequenceNr < o.SequenceNr {
		return false
	}
	return o.SequenceNr == 0 || h.Last.SequenceNr != o.SequenceNr || h.Last.WriterUUID != o.WriterUUID || !bytes.Equal(h.Last.Payload, o.Payload)
}

// notConfirmed is the error of an adoption whose confirmation failed: the
// store's own row at seq is on the primary, not known to be on its
// synchronous standbys. The write stays in doubt.
func (s *Store) notConfirmed(op string, seq uint64, err error) error {
	return markInDoubt(fmt.Errorf("store: %s %q: snapshot %d of this store is committed on the server, but not confirmed on its synchronous standbys (in doubt; it is checked at the next write): %w", op, s.outbox, seq, err))
}
