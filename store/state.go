package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

// state is the store's only copy of the offsets: those of the snapshot
// row durably written at the store's seq. Writers (holding sem) change it
// under mu; readers read it under mu.RLock. A writer builds its next row
// from it while only reading it, and changes it once the row is durable,
// so memory is never ahead of the journal.
//
// It has two forms, at least one present, equal when both are:
//   - vals, a map: what Open builds (Load then only clones it) and what a
//     store in incremental mode keeps while it writes deltas;
//   - snap, the encoded snapshot indexed by key: what a full snapshot is
//     written from, as an edit of it whose cost follows the keys named.
//
// A full write needs snap and builds it at first use (from tmpl, the
// payload of the full row Open read, while no delta has changed the
// offsets since; else by encoding vals); once it commits, vals is dropped.
// A delta commits into whichever forms there are.
type state struct {
	vals map[string]uint64
	snap *codec.Snapshot
	tmpl []byte

	// root is the sequence number of the newest full snapshot, which the
	// deltas above it build on (0 for none); rootBytes is its size.
	// deltas and deltaBytes count the deltas written above it.
	root       uint64
	rootBytes  int
	deltas     int
	deltaBytes int
}

func (st *state) len() int {
	if st.vals != nil {
		return len(st.vals)
	}
	return st.snap.Len()
}

func (st *state) get(key string) (uint64, bool) {
	if st.vals != nil {
		v, ok := st.vals[key]
		return v, ok
	}
	return st.snap.Get(key)
}

// keys yields every key, in no particular order.
func (st *state) keys() iter.Seq[string] {
	if st.vals != nil {
		return maps.Keys(st.vals)
	}
	return func(yield func(string) bool) {
		for k := range st.snap.All() {
			if !yield(k) {
				return
			}
		}
	}
}

// copy returns the offsets as a new map.
func (st *state) copy() map[string]uint64 {
	if st.vals != nil {
		return maps.Clone(st.vals)
	}
	return st.snap.Map()
}

// errMissingBase and errChainGap are wrapped by the CorruptSnapshotError
// of a chain of deltas that cannot be read whole.
var (
	errMissingBase = errors.New("a delta whose base is missing: no full snapshot below it")
	errChainGap    = errors.New("a gap in the chain of deltas")
)

// loadChain sets the state Open found: the chain c (the newest full
// snapshot and the deltas above it). It runs before the store is shared.
func (s *Store) loadChain(c journal.Chain) error {
	s.seq = c.Highest
	if len(c.Events) == 0 {
		s.st = state{vals: map[string]uint64{}}
		return nil
	}
	first, last := c.Events[0], c.Events[len(c.Events)-1]
	s.seq = max(s.seq, last.SequenceNr)
	corrupt := func(ev journal.Event, err error) error {
		return &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: err}
	}
	switch first.Manifest {
	case codec.Manifest:
	case codec.DeltaManifest:
		return corrupt(first, errMissingBase)
	default:
		return corrupt(first, errUnknownManifest)
	}
	vals, err := codec.Decode(first.Payload)
	if err != nil {
		return corrupt(first, err)
	}
	st := state{vals: vals, root: first.SequenceNr, rootBytes: len(first.Payload)}
	prev := first.SequenceNr
	for _, ev := range c.Events[1:] {
		if ev.Manifest != codec.DeltaManifest {
			return corrupt(ev, errUnknownManifest)
		}
		if ev.SequenceNr != prev+1 {
			return corrupt(ev, errChainGap)
		}
		d, err := codec.ParseDelta(ev.Payload)
		if err != nil {
			return corrupt(ev, err)
		}
		if d.Base() != prev || d.Root() != st.root {
			return corrupt(ev, errors.Join(errChainGap, &chainError{base: d.Base(), root: d.Root(), wantBase: prev, wantRoot: st.root}))
		}
		for k, v := range d.Set() {
			vals[k] = v
		}
		for k := range d.Removed() {
			delete(vals, k)
		}
		st.deltas++
		st.deltaBytes += len(ev.Payload)
		prev = ev.SequenceNr
	}
	if st.deltas == 0 {
		st.tmpl = first.Payload
	}
	s.st = st
	s.info = rowInfo(last)
	s.opened = journal.Event{SequenceNr: last.SequenceNr, WriterUUID: last.WriterUUID, Payload: last.Payload}
	return nil
}

// chainError says how a delta's base or root differs from the chain's.
type chainError struct{ base, root, wantBase, wantRoot uint64 }

func (e *chainError) Error() string {
	return fmt.Sprintf("a delta on row %d of the chain from %d, want one on row %d of the chain from %d",
		e.base, e.root, e.wantBase, e.wantRoot)
}

// rowInfo describes the row ev as Info does.
func rowInfo(ev journal.Event) Info {
	info := Info{WrittenAt: ev.WrittenAt, Writer: ev.WriterUUID}
	if ev.Manifest == codec.DeltaManifest {
		info.Kind = RowDelta
	}
	if info.Kind == RowDelta || slices.Contains(ev.Tags, IncrementalTag) {
		info.Mode = ModeIncremental
	}
	return info
}

// ensureSnap builds the indexed form of the offsets when there is none.
// Only a writer (holding sem) calls it.
func (s *Store) ensureSnap() error {
	if s.st.snap != nil {
		return nil
	}
	var (
		snap *codec.Snapshot
		err  error
	)
	if s.st.tmpl != nil {
		snap, err = codec.ParseSnapshot(s.st.tmpl)
	} else {
		snap, err = codec.NewSnapshot(s.st.vals)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.st.snap, s.st.tmpl = snap, nil
	s.mu.Unlock()
	return nil
}

// Load returns a copy of the current offsets: those of the newest snapshot
// written or loaded, never ahead of what is durable. It does no I/O. Right
// after Open, and while a store in incremental mode writes deltas, it is a
// copy of a map; after a full snapshot was written, the map is built from
// it.
func (s *Store) Load(ctx context.Context) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.copy(), nil
}

// fullCommitted makes e, the edit of the full snapshot durably written at
// seq, the offsets. It runs under mu.
func (st *state) fullCommitted(e *codec.Edit, seq uint64) {
	e.Commit()
	st.vals, st.tmpl = nil, nil
	st.root, st.rootBytes = seq, len(st.snap.Payload())
	st.deltas, st.deltaBytes = 0, 0
}

// deltaCommitted applies a delta of size bytes, durably written, to every
// form of the offsets. It runs under mu. The keys were checked before the
// delta was encoded, so no form refuses them.
func (st *state) deltaCommitted(set map[string]uint64, removed []string, size int) {
	if st.vals != nil {
		for k, v := range set {
			st.vals[k] = v
		}
		for _, k := range removed {
			delete(st.vals, k)
		}
	}
	if st.snap != nil {
		if err := st.snap.Apply(set, removed); err != nil {
			panic("store: a checked delta refused by its snapshot: " + err.Error())
		}
	}
	st.tmpl = nil
	st.deltas++
	st.deltaBytes += size
}
