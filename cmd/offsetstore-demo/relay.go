package main

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
)

// freezable is the killed relay's journal: once frozen, its writes wait
// (a process stopped mid-way) until thawed or their context ends. Reads
// pass: the killed relay publishes nothing more anyway. Every optional
// interface of pgjournal is kept by the embedding.
type freezable struct {
	*pgjournal.Journal

	mu     sync.Mutex
	thawed chan struct{} // nil while not frozen
	held   atomic.Int32  // writes waiting for the thaw
}

// holding reports whether a write waits for the thaw: the killed relay's
// save in flight.
func (f *freezable) holding() bool { return f.held.Load() > 0 }

func (f *freezable) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.thawed == nil {
		f.thawed = make(chan struct{})
	}
}

func (f *freezable) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.thawed != nil {
		close(f.thawed)
		f.thawed = nil
	}
}

func (f *freezable) wait(ctx context.Context) error {
	f.mu.Lock()
	c := f.thawed
	f.mu.Unlock()
	if c == nil {
		return nil
	}
	f.held.Add(1)
	defer f.held.Add(-1)
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *freezable) Append(ctx context.Context, events ...journal.Event) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	return f.Journal.Append(ctx, events...)
}

func (f *freezable) AppendNext(ctx context.Context, ev journal.Event) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	return f.Journal.AppendNext(ctx, ev)
}

func (f *freezable) DeleteTo(ctx context.Context, pid string, to uint64) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	return f.Journal.DeleteTo(ctx, pid, to)
}

// terminateLeader ends the session that holds outbox's leadership
// (pg_terminate_backend), as a killed process's session ends. It reports
// whether one was found.
func terminateLeader(ctx context.Context, pool *pgxpool.Pool, outbox string) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_locks
 WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND (classid::bigint << 32 | objid::bigint) = $1
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, leader.Key(outbox)).Scan(&ok)
	return ok, err
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

func (s *sink) setHook(hook func(total int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onPublish = hook
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

// broker delivers asynchronously published events: it acknowledges them
// in shuffled groups, out of order, from a goroutine of its own.
type broker struct {
	mu      sync.Mutex
	waiting []func()
	wake    chan struct{}
}

func newBroker() *broker { return &broker{wake: make(chan struct{}, 1)} }

func (b *broker) enqueue(deliver func()) {
	b.mu.Lock()
	b.waiting = append(b.waiting, deliver)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run delivers until ctx ends.
func (b *broker) run(ctx context.Context, shuffle func([]func())) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		b.mu.Lock()
		w := b.waiting
		b.waiting = nil
		b.mu.Unlock()
		shuffle(w)
		for _, deliver := range w {
			deliver()
		}
	}
}
