package store

import (
	"context"
	"maps"

	"github.com/outboxkit/offsetstore/journal"
)

// loadState sets the state Open found: the snapshot last (nil for none)
// at sequence number seq. It runs before the store is shared.
func (s *Store) loadState(seq uint64, last *journal.Event) error {
	m := map[string]uint64{}
	if last != nil {
		var err error
		if m, err = decode(*last); err != nil {
			return err
		}
	}
	s.offsets, s.seq = m, seq
	return nil
}

// Load returns a copy of the current offsets: those of the newest snapshot
// written or loaded, never ahead of what is durable. It does no I/O.
func (s *Store) Load(ctx context.Context) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.offsets), nil
}
