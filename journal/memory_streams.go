package journal

import (
	"context"
	"slices"
	"strings"
)

var (
	_ StreamLister  = (*Memory)(nil)
	_ HighestReader = (*Memory)(nil)
)

// PersistenceIDs implements StreamLister in byte order (Go's string
// comparison), the order of a PostgreSQL column with the "C" collation.
// Each call sorts the ids after opts.After: it is meant for tests, not for
// millions of streams.
func (m *Memory) PersistenceIDs(ctx context.Context, opts ListOptions) ([]string, error) {
	opts, err := ValidateListOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	ids := make([]string, 0, min(len(m.streams), opts.Limit))
	for pid, s := range m.streams {
		if len(s.events) == 0 || pid <= opts.After {
			continue
		}
		if opts.ExcludePrefix != "" && strings.HasPrefix(pid, opts.ExcludePrefix) {
			continue
		}
		if !strings.HasPrefix(pid, opts.Prefix) {
			continue
		}
		ids = append(ids, pid)
	}
	m.mu.RUnlock()
	slices.Sort(ids)
	if len(ids) > opts.Limit {
		ids = slices.Clip(ids[:opts.Limit])
	}
	return ids, nil
}

// HighestSequenceNrs implements HighestReader under one lock: one
// consistent view of every id.
func (m *Memory) HighestSequenceNrs(ctx context.Context, persistenceIDs []string) (map[string]uint64, error) {
	for _, pid := range persistenceIDs {
		if err := ValidatePersistenceID(pid); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(persistenceIDs))
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, pid := range persistenceIDs {
		var hi uint64
		if s := m.streams[pid]; s != nil && len(s.events) > 0 {
			hi = s.events[len(s.events)-1].SequenceNr
		}
		out[pid] = hi
	}
	return out, nil
}
