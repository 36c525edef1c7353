package store

import (
	"context"
	"log/slog"
)

// maybePrune deletes snapshot rows older than the newest keep, once every
// pruneEvery writes, and at the first write after Open. It never deletes
// the chain Open reads: the newest full snapshot and the deltas above it. A failure is
// logged, counted and retried after another pruneEvery writes: the save
// itself is already durable, and a prune that keeps failing (a missing
// grant) must not add a round trip to every save.
func (s *Store) maybePrune(ctx context.Context) {
	if s.cfg.noPrune {
		return
	}
	s.mu.RLock()
	seq := s.seq
	s.mu.RUnlock()
	if seq <= uint64(s.cfg.keep) {
		return
	}
	to := seq - uint64(s.cfg.keep)
	if root := s.st.root; root > 0 && root-1 < to {
		to = root - 1
	}
	if to <= s.pruned || (!s.pruneFirst && s.saves < s.cfg.pruneEvery) {
		return
	}
	s.pruneFirst = false
	if err := s.j.DeleteTo(ctx, s.pid, to); err != nil {
		s.saves = 0 // retried after another interval, not at every save
		s.mu.Lock()
		s.stats.PruneErrors++
		s.mu.Unlock()
		s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "offsetstore: pruning old snapshots failed; retried after the next prune interval",
			slog.String("outbox", s.outbox), slog.Uint64("to", to), slog.String("error", err.Error()))
		return
	}
	s.pruned, s.saves = to, 0
	s.mu.Lock()
	s.stats.Prunes++
	s.mu.Unlock()
}
