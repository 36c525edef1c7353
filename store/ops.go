package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// Save merges offsets into the stored ones and writes the result as a new
// snapshot. Offsets only move forward: a value lower than the stored one is
// ignored. A Save that changes nothing writes nothing. Save returns nil only
// once the snapshot is committed. A key that is not valid fails the whole
// call with ErrInvalidKey before anything is written.
func (s *Store) Save(ctx context.Context, offsets map[string]uint64) error {
	if err := validateKeys(maps.Keys(offsets)); err != nil {
		return fmt.Errorf("store: save %q: %w", s.outbox, err)
	}
	return s.change(ctx, "save", func(cur map[string]uint64) *delta {
		return setDelta(cur, offsets, func(old, v uint64) bool { return v > old })
	})
}

// Rewind sets the given keys to the given values, lower ones included: the
// operator's way to re-publish from an earlier point. Other keys keep their
// offsets. Durable and fenced like Save.
func (s *Store) Rewind(ctx context.Context, offsets map[string]uint64) error {
	if err := validateKeys(maps.Keys(offsets)); err != nil {
		return fmt.Errorf("store: rewind %q: %w", s.outbox, err)
	}
	return s.change(ctx, "rewind", func(cur map[string]uint64) *delta {
		return setDelta(cur, offsets, func(old, v uint64) bool { return v != old })
	})
}

// Forget drops keys from the offsets, so that their streams are followed
// from the start again if they reappear. Keys not present are ignored.
// Durable and fenced like Save.
func (s *Store) Forget(ctx context.Context, keys ...string) error {
	if err := validateKeys(slices.Values(keys)); err != nil {
		return fmt.Errorf("store: forget %q: %w", s.outbox, err)
	}
	return s.change(ctx, "forget", func(cur map[string]uint64) *delta {
		var d *delta
		for _, k := range keys {
			if _, ok := cur[k]; !ok {
				continue
			}
			if d == nil {
				d = &delta{}
			}
			if !slices.Contains(d.del, k) {
				d.del = append(d.del, k)
			}
		}
		return d
	})
}

// Replace makes offsets the whole of the stored offsets in one snapshot:
// keys it names are set, lower values included, and keys it lacks are
// dropped. It is the operator's restore (an import of exported offsets),
// atomic where Rewind followed by Forget would write two snapshots.
// Durable and fenced like Save.
func (s *Store) Replace(ctx context.Context, offsets map[string]uint64) error {
	if err := validateKeys(maps.Keys(offsets)); err != nil {
		return fmt.Errorf("store: replace %q: %w", s.outbox, err)
	}
	return s.change(ctx, "replace", func(cur map[string]uint64) *delta {
		d := setDelta(cur, offsets, func(old, v uint64) bool { return v != old })
		for k := range cur {
			if _, ok := offsets[k]; ok {
				continue
			}
			if d == nil {
				d = &delta{}
			}
			d.del = append(d.del, k)
		}
		return d
	})
}

// delta is one change to the offsets: keys to set and keys to drop.
type delta struct {
	set map[string]uint64
	del []string
}

func (d *delta) apply(m map[string]uint64) {
	for k, v := range d.set {
		m[k] = v
	}
	for _, k := range d.del {
		delete(m, k)
	}
}

// setDelta returns the delta that sets each key of offsets that cur lacks,
// or whose stored value moves as moves says; nil when there is none.
func setDelta(cur, offsets map[string]uint64, moves func(old, v uint64) bool) *delta {
	var d *delta
	for k, v := range offsets {
		if old, ok := cur[k]; ok && !moves(old, v) {
			continue
		}
		if d == nil {
			d = &delta{set: make(map[string]uint64, len(offsets))}
		}
		d.set[k] = v
	}
	return d
}
