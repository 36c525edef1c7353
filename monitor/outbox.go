package monitor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// outbox is what a monitor keeps of one outbox between polls.
type outbox struct {
	name, pid string

	opened bool   // refresh ran once
	head   uint64 // the stream's highest number when last opened
	err    error  // of the last open
	found  bool
	info   store.Info
	// offsets are the keys of the newest snapshot read, positions the
	// same sorted by key: the outbox is decoded again only when its
	// stream's head moved.
	offsets   map[string]uint64
	positions []journal.Position
	rewound   int                 // keys gone down at the last open, for this poll's figures
	unseen    map[string]struct{} // source streams without a key (UnseenCount)

	window []Figures
}

// refresh reopens the outbox when its stream's highest number is not the
// one last read (or the last read failed), through the store, which reads
// every snapshot format it writes.
func (b *outbox) refresh(ctx context.Context, j journal.Journal, head uint64) {
	if b.opened && b.err == nil && head == b.head {
		return
	}
	b.opened, b.head, b.err = true, head, nil
	if head == 0 {
		b.setOffsets(nil, store.Info{}, false)
		return
	}
	s, err := store.Open(ctx, j, b.name, store.WithoutPruning())
	if err != nil {
		b.err = err
		return
	}
	offsets, err := s.Load(ctx)
	if err != nil {
		b.err = err
		return
	}
	info := s.Info()
	// Every row deleted (the store's explicit wipe): no snapshot to read.
	b.setOffsets(offsets, info, !info.WrittenAt.IsZero())
}

// setOffsets installs the offsets read, counting the keys that went down
// or vanished since the previous ones.
func (b *outbox) setOffsets(offsets map[string]uint64, info store.Info, found bool) {
	b.rewound = 0
	for k, old := range b.offsets {
		if v, ok := offsets[k]; !ok || v < old {
			b.rewound++
		}
	}
	b.offsets, b.info, b.found = offsets, info, found
	b.positions = b.positions[:0]
	for _, k := range slices.Sorted(maps.Keys(offsets)) {
		b.positions = append(b.positions, journal.Position{PersistenceID: k, SequenceNr: offsets[k]})
	}
	for k := range b.unseen {
		if _, ok := offsets[k]; ok {
			delete(b.unseen, k)
		}
	}
}

// keyed reports whether the outbox was read and has a key for id.
func (b *outbox) keyed(id string) bool {
	if b.err != nil || !b.found {
		return false
	}
	_, ok := b.offsets[id]
	return ok
}

// nearness is the length of the longest prefix id shares with a key of
// the outbox next to it in byte order; -1 when the outbox was not read.
func (b *outbox) nearness(id string) int {
	if b.err != nil || !b.found {
		return -1
	}
	i, _ := slices.BinarySearchFunc(b.positions, id, func(p journal.Position, id string) int { return strings.Compare(p.PersistenceID, id) })
	n := 0
	for _, k := range []int{i - 1, i} {
		if k >= 0 && k < len(b.positions) {
			n = max(n, commonPrefix(b.positions[k].PersistenceID, id))
		}
	}
	return n
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// seeUnseen counts the source streams of ids that no monitored outbox has
// a key for, each for the outboxes whose keys are nearest to it (see
// UnseenCount), and forgets the unseen streams an outbox has a key for
// now.
func (m *Monitor) seeUnseen(ids []string) {
	boxes := make([]*outbox, 0, len(m.order))
	for _, name := range m.order {
		boxes = append(boxes, m.boxes[name])
	}
	keyedByAny := func(id string) bool {
		for _, b := range boxes {
			if b.keyed(id) {
				return true
			}
		}
		return false
	}
	for _, b := range boxes {
		for id := range b.unseen {
			if keyedByAny(id) {
				delete(b.unseen, id)
			}
		}
	}
	for _, id := range ids {
		if keyedByAny(id) {
			continue
		}
		best, near := -1, []*outbox(nil)
		for _, b := range boxes {
			switch n := b.nearness(id); {
			case n < 0:
			case n > best:
				best, near = n, []*outbox{b}
			case n == best:
				near = append(near, b)
			}
		}
		for _, b := range near {
			if b.unseen == nil {
				b.unseen = map[string]struct{}{}
			}
			b.unseen[id] = struct{}{}
		}
	}
}

// appendPositions appends the positions the outbox's lag is read at: its
// keys and its unseen streams at 0.
func (b *outbox) appendPositions(positions []journal.Position) []journal.Position {
	if b.err != nil || !b.found {
		return positions
	}
	positions = append(positions, b.positions...)
	for _, k := range slices.Sorted(maps.Keys(b.unseen)) {
		positions = append(positions, journal.Position{PersistenceID: k})
	}
	return positions
}

// figures are the outbox's figures at now, but the lag.
func (b *outbox) figures(now time.Time) Figures {
	f := Figures{Outbox: b.name, At: now, Err: b.err, Found: b.found && b.err == nil}
	if b.err != nil {
		f.Err = fmt.Errorf("read the snapshot: %w", b.err)
		return f
	}
	if !f.Found {
		return f
	}
	f.SequenceNr, f.SnapshotWrittenAt, f.Writer, f.Mode, f.Keys = b.info.SequenceNr, b.info.WrittenAt, b.info.Writer, b.info.Mode, len(b.offsets)
	if now.After(f.SnapshotWrittenAt) {
		f.SnapshotAge = now.Sub(f.SnapshotWrittenAt)
	}
	f.Unseen = len(b.unseen)
	f.Rewound, b.rewound = b.rewound, 0
	return f
}

// push adds a poll's figures to the window, keeping the last n.
func (b *outbox) push(f Figures, n int) {
	b.window = append(b.window, f)
	if len(b.window) > n {
		b.window = slices.Delete(b.window, 0, len(b.window)-n)
	}
}

// report judges the window.
func (b *outbox) report(rules Rules) Report {
	r := Report{Figures: b.window[len(b.window)-1]}
	r.Status, r.Reason = Evaluate(b.window, rules)
	for i := range b.window {
		st, _ := Evaluate(b.window[:i+1], rules)
		f := b.window[i]
		r.Window = append(r.Window, Point{At: f.At, Lag: f.Lag, LagTime: f.LagTime, Status: st})
	}
	return r
}

// OutboxOf returns the outbox whose snapshots live under pid, if pid is
// such a persistence id (store.PersistenceID of a valid name).
func OutboxOf(pid string) (string, bool) {
	name, ok := strings.CutPrefix(pid, store.PersistenceIDPrefix)
	if !ok {
		return "", false
	}
	name, ok = strings.CutSuffix(name, "::offsets")
	if !ok || store.ValidateName(name) != nil || store.PersistenceID(name) != pid {
		return "", false
	}
	return name, true
}

// Outboxes lists the outboxes of the journal l, in l's order: the
// persistence ids that start with store.PersistenceIDPrefix and name an
// outbox (ListOptions.Prefix).
func Outboxes(ctx context.Context, l journal.StreamLister) ([]string, error) {
	var names []string
	for pid, err := range journal.AllPersistenceIDs(ctx, l, journal.ListOptions{Prefix: store.PersistenceIDPrefix, Limit: journal.MaxListLimit}) {
		if err != nil {
			return nil, err
		}
		if name, ok := OutboxOf(pid); ok {
			names = append(names, name)
		}
	}
	return names, nil
}

// discover lists the journal's persistence ids: the outboxes whole at the
// first poll of a monitor of every outbox, then a page of every id per
// poll, which finds new outboxes and unseen streams; with
// WithDiscoveryPage(0) the outboxes and the source streams whole at every
// poll. It returns the source streams listed, for the unseen ones.
func (m *Monitor) discover(ctx context.Context) ([]string, error) {
	l, _ := m.j.(journal.StreamLister)
	if m.all() && (!m.listed || m.cfg.page == 0) {
		names, err := Outboxes(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("monitor: list the outboxes: %w", err)
		}
		for _, name := range names {
			m.add(name)
		}
		m.listed = true
	}
	if m.cfg.unseen == UnseenIgnore && (m.named != nil || m.cfg.page == 0) {
		return nil, nil
	}
	var ids []string
	if m.cfg.page == 0 {
		opts := journal.ListOptions{ExcludePrefix: store.PersistenceIDPrefix, Limit: journal.MaxListLimit}
		for pid, err := range journal.AllPersistenceIDs(ctx, l, opts) {
			if err != nil {
				return nil, fmt.Errorf("monitor: list the streams: %w", err)
			}
			ids = append(ids, pid)
		}
	} else {
		page, err := l.PersistenceIDs(ctx, journal.ListOptions{After: m.cursor, Limit: m.cfg.page})
		if err != nil {
			return nil, fmt.Errorf("monitor: list the streams: %w", err)
		}
		m.cursor = ""
		if len(page) == m.cfg.page {
			m.cursor = page[len(page)-1]
		}
		ids = page
	}
	sources := ids[:0]
	for _, pid := range ids {
		if strings.HasPrefix(pid, store.PersistenceIDPrefix) {
			if name, ok := OutboxOf(pid); ok && m.all() {
				m.add(name)
			}
			continue
		}
		sources = append(sources, pid)
	}
	if m.cfg.unseen == UnseenIgnore {
		return nil, nil
	}
	return sources, nil
}
