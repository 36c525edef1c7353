package journal

import (
	"cmp"
	"context"
	"iter"
	"slices"
	"sync"
	"time"
)

// Memory is an in-memory Journal: the reference implementation of the
// contract, used by unit tests and examples. It is safe for concurrent use.
// The zero value is an empty journal ready to use.
//
// Events are stored as deep copies: changing an Event's Payload or Tags
// after Append, or changing an event returned by Replay or Last, does not
// change the journal.
//
// Replay iterates over a snapshot of the requested range taken when the
// iteration starts, much like a single SQL statement, and holds no lock
// while it yields: the loop body may call any method of the journal,
// Append included.
type Memory struct {
	mu      sync.RWMutex
	streams map[string]*memStream
	moves   []memMove // every row appended, in commit order: the feed (memory_feed.go)
}

// memStream holds the events of one persistence id, sorted by SequenceNr.
//
// Replay reads a sub-slice of events after releasing the lock, so the
// backing array is copy-on-write: an element, once stored, is never written
// again. Appending past the end (which never overlaps a snapshot taken
// earlier, since the end of the stream never moves back within one array),
// dropping a prefix by re-slicing, and replacing the slice with a new array
// are the only changes allowed.
type memStream struct {
	events []Event
}

var (
	_ Journal           = (*Memory)(nil)
	_ NextAppender      = (*Memory)(nil)
	_ SuccessorAppender = (*Memory)(nil)
	_ HeadReader        = (*Memory)(nil)
)

// NewMemory returns an empty in-memory journal.
func NewMemory() *Memory {
	return &Memory{streams: make(map[string]*memStream)}
}

type memKey struct {
	pid string
	seq uint64
}

// Append implements Journal.
func (m *Memory) Append(ctx context.Context, events ...Event) error {
	if err := ValidateEvents(events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// Copy and group the batch before taking the lock, and find the first
	// event that repeats an earlier one of the batch.
	now := time.Now().Truncate(time.Microsecond) // timestamptz precision
	groups := make(map[string][]Event)
	dupAt := -1
	var seen map[memKey]struct{}
	if len(events) > 1 {
		seen = make(map[memKey]struct{}, len(events))
	}
	for i, ev := range events {
		if seen != nil && dupAt < 0 {
			k := memKey{ev.PersistenceID, ev.SequenceNr}
			if _, dup := seen[k]; dup {
				dupAt = i
			}
			seen[k] = struct{}{}
		}
		stored := copyEvent(ev)
		stored.Deleted = false
		stored.WrittenAt = now
		groups[ev.PersistenceID] = append(groups[ev.PersistenceID], stored)
	}
	for _, g := range groups {
		slices.SortFunc(g, func(a, b Event) int { return cmp.Compare(a.SequenceNr, b.SequenceNr) })
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	// Check every event before writing any, in batch order, so that the
	// first conflicting event is the one reported.
	for i, ev := range events {
		if i == dupAt {
			return &ConflictError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr}
		}
		if s := m.streams[ev.PersistenceID]; s != nil {
			if _, found := s.search(ev.SequenceNr); found {
				return &ConflictError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr}
			}
		}
	}
	if m.streams == nil {
		m.streams = make(map[string]*memStream)
	}
	for pid, g := range groups {
		s := m.streams[pid]
		if s == nil {
			s = &memStream{}
			m.streams[pid] = s
		}
		s.insert(g)
		m.moved(pid, g[len(g)-1].SequenceNr)
	}
	return nil
}

// AppendNext implements NextAppender.
func (m *Memory) AppendNext(ctx context.Context, ev Event) error {
	return m.appendNext(ctx, ev, false)
}

// AppendSuccessor implements SuccessorAppender.
func (m *Memory) AppendSuccessor(ctx context.Context, ev Event) error {
	return m.appendNext(ctx, ev, true)
}

func (m *Memory) appendNext(ctx context.Context, ev Event, successor bool) error {
	if err := ValidateEvent(ev); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stored := copyEvent(ev)
	stored.Deleted = false
	stored.WrittenAt = time.Now().Truncate(time.Microsecond)

	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[ev.PersistenceID]
	if s != nil && len(s.events) > 0 && s.events[len(s.events)-1].SequenceNr >= ev.SequenceNr {
		return &ConflictError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Superseded: true}
	}
	if successor {
		var newest *Event
		if s != nil && len(s.events) > 0 {
			newest = &s.events[len(s.events)-1]
		}
		if newest == nil || newest.SequenceNr != ev.SequenceNr-1 || newest.Deleted {
			e := &BaseMissingError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr}
			if newest != nil {
				e.Highest = newest.SequenceNr
			}
			return e
		}
	}
	if m.streams == nil {
		m.streams = make(map[string]*memStream)
	}
	if s == nil {
		s = &memStream{}
		m.streams[ev.PersistenceID] = s
	}
	s.insert([]Event{stored})
	m.moved(ev.PersistenceID, ev.SequenceNr)
	return nil
}

// Replay implements Journal. The parameter max of the interface is called
// limit here.
func (m *Memory) Replay(ctx context.Context, persistenceID string, fromSeq, toSeq, limit uint64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if err := ValidatePersistenceID(persistenceID); err != nil {
			yield(Event{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(Event{}, err)
			return
		}
		from, to := fromSeq, ClampSequenceNr(toSeq)
		if limit == 0 || from > to {
			return
		}
		m.yieldLive(ctx, persistenceID, from, to, limit, yield)
	}
}

// yieldLive yields copies of the live events of pid with from <=
// SequenceNr <= to, at most limit of them (limit > 0), from a snapshot
// (see snapshot), checking ctx before each. It returns how many it
// yielded, and false when the caller must stop: yield refused an event,
// or ctx ended (its error yielded).
func (m *Memory) yieldLive(ctx context.Context, pid string, from, to, limit uint64, yield func(Event, error) bool) (uint64, bool) {
	var n uint64
	for _, ev := range m.snapshot(pid, from, to) {
		if ev.Deleted {
			continue
		}
		if err := ctx.Err(); err != nil {
			yield(Event{}, err)
			return n, false
		}
		if !yield(copyEvent(ev), nil) {
			return n, false
		}
		if n++; n == limit {
			break
		}
	}
	return n, true
}

// snapshot returns the stored events of pid with from <= SequenceNr <= to.
// The result shares the stream's copy-on-write array and must not be
// modified.
func (m *Memory) snapshot(pid string, from, to uint64) []Event {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.streams[pid]
	if s == nil {
		return nil
	}
	lo, _ := s.search(from)
	hi, found := s.search(to)
	if found {
		hi++
	}
	return s.events[lo:hi:hi]
}

// HighestSequenceNr implements Journal.
func (m *Memory) HighestSequenceNr(ctx context.Context, persistenceID string) (uint64, error) {
	if err := ValidatePersistenceID(persistenceID); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.streams[persistenceID]
	if s == nil || len(s.events) == 0 {
		return 0, nil
	}
	return s.events[len(s.events)-1].SequenceNr, nil
}

// DeleteTo implements Journal.
func (m *Memory) DeleteTo(ctx context.Context, persistenceID string, toSeq uint64) error {
	if err := ValidatePersistenceID(persistenceID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	to := ClampSequenceNr(toSeq)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[persistenceID]
	if s == nil {
		return nil
	}
	s.deleteTo(to)
	return nil
}

// Last implements Journal.
func (m *Memory) Last(ctx context.Context, persistenceID string) (Event, bool, error) {
	if err := ValidatePersistenceID(persistenceID); err != nil {
		return Event{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Event{}, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.streams[persistenceID]
	if s == nil {
		return Event{}, false, nil
	}
	for i := len(s.events) - 1; i >= 0; i-- {
		if !s.events[i].Deleted {
			return copyEvent(s.events[i]), true, nil
		}
	}
	return Event{}, false, nil
}

// Head implements HeadReader: the newest live event and the highest
// sequence number under one lock.
func (m *Memory) Head(ctx context.Context, persistenceID string) (Head, error) {
	if err := ValidatePersistenceID(persistenceID); err != nil {
		return Head{}, err
	}
	if err := ctx.Err(); err != nil {
		return Head{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.streams[persistenceID]
	if s == nil || len(s.events) == 0 {
		return Head{}, nil
	}
	h := Head{Highest: s.events[len(s.events)-1].SequenceNr}
	for i := len(s.events) - 1; i >= 0; i-- {
		if !s.events[i].Deleted {
			h.Last, h.HasLast = copyEvent(s.events[i]), true
			break
		}
	}
	return h, nil
}

// search returns the index of the first event with SequenceNr >= seq and
// whether that event's SequenceNr is seq.
func (s *memStream) search(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(s.events, seq, func(ev Event, seq uint64) int {
		return cmp.Compare(ev.SequenceNr, seq)
	})
}

// insert adds sorted events whose sequence numbers are not in s yet.
func (s *memStream) insert(g []Event) {
	if n := len(s.events); n == 0 || s.events[n-1].SequenceNr < g[0].SequenceNr {
		// The common case: the batch continues the stream. append writes
		// only past the current end, never into a snapshot.
		s.events = append(s.events, g...)
		return
	}
	// Merge into a new array, leaving the old one to running snapshots.
	merged := make([]Event, 0, len(s.events)+len(g))
	old := s.events
	for len(old) > 0 && len(g) > 0 {
		if old[0].SequenceNr < g[0].SequenceNr {
			merged, old = append(merged, old[0]), old[1:]
		} else {
			merged, g = append(merged, g[0]), g[1:]
		}
	}
	merged = append(merged, old...)
	s.events = append(merged, g...)
}

// deleteTo removes the events with SequenceNr <= to, keeping the highest
// one marked Deleted if it is reached.
func (s *memStream) deleteTo(to uint64) {
	n, found := s.search(to)
	if found {
		n++
	}
	switch {
	case n == 0:
		return
	case n == len(s.events):
		last := s.events[n-1]
		if n == 1 && last.Deleted {
			return
		}
		last.Deleted = true
		s.events = []Event{last} // a new array: snapshots keep the old row
	default:
		rest := s.events[n:]
		if n >= len(rest) {
			// Release the dropped prefix once it outweighs what is kept;
			// cloning here costs O(1) amortised per removed event.
			rest = slices.Clone(rest)
		}
		s.events = rest
	}
}

// copyEvent returns ev with its own Payload (never nil) and Tags (nil when
// empty).
func copyEvent(ev Event) Event {
	payload := make([]byte, len(ev.Payload))
	copy(payload, ev.Payload)
	ev.Payload = payload
	if len(ev.Tags) == 0 {
		ev.Tags = nil
	} else {
		ev.Tags = slices.Clone(ev.Tags)
	}
	return ev
}
