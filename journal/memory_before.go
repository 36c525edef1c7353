package journal

import (
	"context"
	"time"
)

var _ BeforeReader = (*Memory)(nil)

// HighestSequenceNrsBefore implements BeforeReader under one lock: one
// consistent view of every id. Each stream is searched from its newest
// row down, so a call costs the rows written at or after before, plus one
// per id.
func (m *Memory) HighestSequenceNrsBefore(ctx context.Context, persistenceIDs []string, before time.Time) (map[string]uint64, error) {
	for _, pid := range persistenceIDs {
		if err := ValidatePersistenceID(pid); err != nil {
			return nil, err
		}
	}
	if err := ValidateTime(before); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(persistenceIDs))
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, pid := range persistenceIDs {
		var nr uint64
		if s := m.streams[pid]; s != nil {
			for i := len(s.events) - 1; i >= 0; i-- {
				if s.events[i].WrittenAt.Before(before) {
					nr = s.events[i].SequenceNr
					break
				}
			}
		}
		out[pid] = nr
	}
	return out, nil
}
