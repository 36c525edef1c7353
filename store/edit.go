package store

import (
	"slices"

	"github.com/outboxkit/offsetstore/codec"
)

// edit is a change being built on the store's offsets, which it only
// reads: the next full snapshot (fullEdit) or the next delta (deltaEdit).
type edit interface {
	// merge sets each key of offsets where the edit lacks it or where
	// moves(old, new) says so. New keys are checked with ValidateKey, all
	// of them before any is set.
	merge(offsets map[string]uint64, moves func(old, v uint64) bool) error
	// drop removes key and reports whether the edit held it.
	drop(key string) bool
	// changed reports whether the edit differs from the offsets it
	// started from.
	changed() bool
}

// fullEdit builds a full snapshot as an edit of the indexed snapshot.
// When count is set (incremental mode) it counts the keys that change, so
// that a change naming many keys of which few move can be written as a
// delta after all.
type fullEdit struct {
	*codec.Edit
	count bool
	moved int // keys set to a new value, added or dropped, when count
}

func (e *fullEdit) merge(offsets map[string]uint64, moves func(old, v uint64) bool) error {
	if !e.count {
		_, err := merge(e.Edit, offsets, moves)
		return err
	}
	counted := func(old, v uint64) bool {
		if moves(old, v) {
			e.moved++
			return true
		}
		return false
	}
	added, err := merge(e.Edit, offsets, counted)
	e.moved += added
	return err
}

func (e *fullEdit) drop(key string) bool {
	if !e.Delete(key) {
		return false
	}
	e.moved++
	return true
}

func (e *fullEdit) changed() bool { return e.Changed() }

// bulkShare is the share of the outbox's keys from which a change walks
// the whole snapshot (codec.Edit.PutAll) rather than looking its keys up
// one by one: a walk costs about a fifth of a lookup per entry, so from a
// quarter of the keys on it costs no more than the lookups would, and the
// cost of a call stays proportional to the keys it names.
const bulkShare = 4

// merge sets the keys of offsets where moves(old, new) says so, and adds
// those the snapshot lacks. It returns how many it added.
func merge(e *codec.Edit, offsets map[string]uint64, moves func(old, v uint64) bool) (added int, err error) {
	var fresh []string
	if len(offsets)*bulkShare >= e.Len() && e.Len() > 0 {
		if held := e.PutAll(offsets, moves); held < len(offsets) {
			for k := range offsets {
				if _, _, ok := e.Lookup(k); !ok {
					fresh = append(fresh, k)
				}
			}
		}
		return len(fresh), addKeys(e, fresh, offsets)
	}
	for k, v := range offsets {
		if old, slot, ok := e.Lookup(k); ok {
			if moves(old, v) {
				e.Put(slot, v)
			}
			continue
		}
		fresh = append(fresh, k)
	}
	return len(fresh), addKeys(e, fresh, offsets)
}

// addKeys adds keys, which the snapshot does not hold, with their values
// in offsets, once ValidateKey accepts every one of them (keys already held
// are not checked again). They are appended in ascending order: sorting
// costs what the call adds, not what the outbox holds, and a snapshot
// whose new keys all sort after the old ones stays canonical (the first
// one always does).
func addKeys(e *codec.Edit, keys []string, offsets map[string]uint64) error {
	if err := validateKeys(keys); err != nil {
		return err
	}
	if len(keys) > 1 {
		slices.Sort(keys)
	}
	for _, k := range keys {
		if err := e.Set(k, offsets[k]); err != nil {
			return err
		}
	}
	return nil
}

func validateKeys(keys []string) error {
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
	}
	return nil
}

// deltaEdit builds a delta: the keys set and removed on top of the
// store's offsets, which it reads through st.
type deltaEdit struct {
	st      *state
	set     map[string]uint64
	removed map[string]struct{}
}

func newDeltaEdit(st *state, named int) *deltaEdit {
	return &deltaEdit{st: st, set: make(map[string]uint64, named)}
}

// lookup returns the value of key as the edit stands.
func (d *deltaEdit) lookup(key string) (uint64, bool) {
	if v, ok := d.set[key]; ok {
		return v, true
	}
	if _, gone := d.removed[key]; gone {
		return 0, false
	}
	return d.st.get(key)
}

func (d *deltaEdit) merge(offsets map[string]uint64, moves func(old, v uint64) bool) error {
	var fresh []string
	for k, v := range offsets {
		if old, ok := d.lookup(k); ok {
			if moves(old, v) {
				d.set[k] = v
			}
			continue
		}
		fresh = append(fresh, k)
	}
	if err := validateKeys(fresh); err != nil {
		return err
	}
	for _, k := range fresh {
		d.set[k] = offsets[k]
		delete(d.removed, k)
	}
	return nil
}

func (d *deltaEdit) drop(key string) bool {
	if _, ok := d.lookup(key); !ok {
		return false
	}
	delete(d.set, key)
	if _, held := d.st.get(key); held {
		if d.removed == nil {
			d.removed = map[string]struct{}{}
		}
		d.removed[key] = struct{}{}
	}
	return true
}

func (d *deltaEdit) changed() bool { return len(d.set) > 0 || len(d.removed) > 0 }

// delta returns the edit as a codec.Delta on the row base of the chain
// from root.
func (d *deltaEdit) delta(base, root uint64) codec.Delta {
	out := codec.Delta{Base: base, Root: root, Set: d.set}
	for k := range d.removed {
		out.Removed = append(out.Removed, k)
	}
	return out
}
