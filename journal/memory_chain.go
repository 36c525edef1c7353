package journal

import "context"

var _ ChainReader = (*Memory)(nil)

// ReadChain implements ChainReader under one lock.
func (m *Memory) ReadChain(ctx context.Context, persistenceID, base string) (Chain, error) {
	if err := ValidatePersistenceID(persistenceID); err != nil {
		return Chain{}, err
	}
	if err := ctx.Err(); err != nil {
		return Chain{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.streams[persistenceID]
	if s == nil || len(s.events) == 0 {
		return Chain{}, nil
	}
	from := 0
	for i := len(s.events) - 1; i >= 0; i-- {
		if ev := &s.events[i]; !ev.Deleted && ev.Manifest == base {
			from = i
			break
		}
	}
	c := Chain{Highest: s.events[len(s.events)-1].SequenceNr}
	for _, ev := range s.events[from:] {
		if !ev.Deleted {
			c.Events = append(c.Events, copyEvent(ev))
		}
	}
	return c, nil
}
