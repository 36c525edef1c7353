package store

import (
	"context"
	"fmt"

	"github.com/outboxkit/offsetstore/journal"
)

// CheckOwnership reports, without writing, whether this store still owns
// its outbox: whether the newest snapshot in the journal is the one it
// last wrote or loaded. It costs one read of the stream's head. A relay
// that saves rarely calls it (for example before publishing a batch) to
// learn early that it was fenced, where a Save that changes nothing would
// not tell.
//
// When another writer's snapshot is newer, the store is fenced from then
// on, as if a write had found it, and the error matches ErrFenced (a
// *FencedError saying whether an operator or another relay wrote it).
// When the newer snapshot is one of this store's own writes whose outcome
// was in doubt, CheckOwnership returns nil: the next write adopts it. A
// read error is returned as it is and changes nothing.
func (s *Store) CheckOwnership(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("store: check ownership of %q: %w", s.outbox, ctx.Err())
	}
	defer func() { <-s.sem }()
	if f := s.fencedErr(); f != nil {
		return f
	}
	h, err := journal.ReadHead(ctx, s.j, s.pid)
	if err != nil {
		return fmt.Errorf("store: check ownership of %q: %w", s.outbox, err)
	}
	if h.Highest <= s.SequenceNr() {
		return nil
	}
	f := &FencedError{Outbox: s.outbox, SequenceNr: h.Highest}
	if h.HasLast {
		if h.Last.WriterUUID == s.cfg.writer {
			return nil // our own write in doubt: the next write adopts it
		}
		f.SequenceNr, f.Writer = h.Last.SequenceNr, h.Last.WriterUUID
	}
	s.mu.Lock()
	s.fenced = f
	s.mu.Unlock()
	return f
}
