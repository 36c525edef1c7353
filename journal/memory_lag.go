package journal

import "context"

var _ LagReader = (*Memory)(nil)

// StreamLags implements LagReader under one lock: one consistent view of
// every stream.
func (m *Memory) StreamLags(ctx context.Context, positions []Position) ([]StreamLag, error) {
	if err := ValidatePositions(positions); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []StreamLag
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, p := range positions {
		l := StreamLag{PersistenceID: p.PersistenceID, Offset: p.SequenceNr}
		s := m.streams[p.PersistenceID]
		if s != nil && len(s.events) > 0 {
			l.Highest = s.events[len(s.events)-1].SequenceNr
		}
		if l.Highest == l.Offset {
			continue
		}
		if l.Highest > l.Offset {
			i, _ := s.search(p.SequenceNr + 1) // Highest > Offset: no overflow
			for ; i < len(s.events); i++ {
				if !s.events[i].Deleted {
					l.NextWrittenAt = s.events[i].WrittenAt
					break
				}
			}
		}
		out = append(out, l)
	}
	return out, nil
}
