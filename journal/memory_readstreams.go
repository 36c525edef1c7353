package journal

import (
	"context"
	"iter"
	"slices"
	"strings"
)

var (
	_ StreamsReader = (*Memory)(nil)
	_ Scanner       = (*Memory)(nil)
)

// ReadStreams implements StreamsReader, each stream from a snapshot taken
// when its turn comes (as Replay), without holding the lock while it
// yields.
func (m *Memory) ReadStreams(ctx context.Context, from []Position, opts ReadStreamsOptions) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		opts, err := ValidateReadStreams(from, opts)
		if err != nil {
			yield(Event{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(Event{}, err)
			return
		}
		total := uint64(opts.Total)
		for _, p := range from {
			if p.SequenceNr >= MaxSequenceNr {
				continue
			}
			n, ok := m.yieldLive(ctx, p.PersistenceID, p.SequenceNr+1, MaxSequenceNr, min(total, uint64(opts.PerStream)), yield)
			if !ok {
				return
			}
			if total -= n; total == 0 {
				return
			}
		}
	}
}

// Scan implements Scanner in byte order. Each call sorts the ids after
// opts.After: it is meant for tests, not for millions of streams.
func (m *Memory) Scan(ctx context.Context, opts ScanOptions) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		opts, err := ValidateScanOptions(opts)
		if err != nil {
			yield(Event{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(Event{}, err)
			return
		}
		m.mu.RLock()
		ids := make([]string, 0, len(m.streams))
		for pid := range m.streams {
			if pid < opts.After.PersistenceID {
				continue
			}
			if opts.ExcludePrefix != "" && strings.HasPrefix(pid, opts.ExcludePrefix) {
				continue
			}
			ids = append(ids, pid)
		}
		m.mu.RUnlock()
		slices.Sort(ids)
		left := uint64(opts.Limit)
		for _, pid := range ids {
			after := uint64(0)
			if pid == opts.After.PersistenceID {
				after = opts.After.SequenceNr
			}
			if after >= MaxSequenceNr {
				continue
			}
			n, ok := m.yieldLive(ctx, pid, after+1, MaxSequenceNr, left, yield)
			if !ok {
				return
			}
			if left -= n; left == 0 {
				return
			}
		}
	}
}
