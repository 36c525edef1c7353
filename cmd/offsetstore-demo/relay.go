package main

import (
	"context"
	"math"
	"sync"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// relayRun is what one relay did.
type relayRun struct {
	published int
	saves     int
	lastSaved int               // published when the last save returned
	pending   map[string]uint64 // published but not saved
}

// runRelay is the relay: for each stream, replay from the saved offset +
// 1, publish, and save the offsets every saveEvery events and at the end.
// It runs until ctx is cancelled (killed), a call fails, or every stream
// is done. afterSave, if not nil, is called after each save.
func runRelay(ctx context.Context, j journal.Journal, s *store.Store, pids []string, saveEvery int,
	publish func(pid string, seq uint64), afterSave func(saves int)) (*relayRun, error) {
	r := &relayRun{pending: map[string]uint64{}}
	offsets, err := s.Load(ctx)
	if err != nil {
		return r, err
	}
	save := func() error {
		if err := s.Save(ctx, r.pending); err != nil {
			return err
		}
		clear(r.pending)
		r.saves++
		r.lastSaved = r.published
		if afterSave != nil {
			afterSave(r.saves)
		}
		return nil
	}
	for _, pid := range pids {
		for ev, err := range j.Replay(ctx, pid, offsets[pid]+1, math.MaxUint64, math.MaxUint64) {
			if err != nil {
				return r, err
			}
			publish(pid, ev.SequenceNr)
			r.published++
			r.pending[pid] = ev.SequenceNr
			if err := ctx.Err(); err != nil {
				return r, err // killed
			}
			if r.published%saveEvery == 0 {
				if err := save(); err != nil {
					return r, err
				}
			}
		}
	}
	if len(r.pending) > 0 {
		if err := save(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// sink is where the relays publish: a count per (stream, sequence nr).
type sink struct {
	mu        sync.Mutex
	counts    map[string][]uint32 // pid → count per seq-1
	total     int
	onPublish func(total int)
}

func newSink(pids []string, perStream int) *sink {
	s := &sink{counts: make(map[string][]uint32, len(pids))}
	for _, pid := range pids {
		s.counts[pid] = make([]uint32, perStream)
	}
	return s
}

func (s *sink) publish(pid string, seq uint64) {
	s.mu.Lock()
	s.counts[pid][seq-1]++
	s.total++
	n, hook := s.total, s.onPublish
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
}

// result counts the events published, those published more than once,
// and those never published.
func (s *sink) result() (published, republished, lost int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, counts := range s.counts {
		for _, n := range counts {
			switch {
			case n == 0:
				lost++
			case n > 1:
				republished++
			}
		}
	}
	return s.total, republished, lost
}
