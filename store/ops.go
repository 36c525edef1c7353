package store

import (
	"context"
	"slices"

	"github.com/outboxkit/offsetstore/codec"
)

// Save merges offsets into the stored ones and writes the result as a new
// snapshot. Offsets only move forward: a value lower than the stored one is
// ignored. A Save that changes nothing writes nothing, unless a write of
// this store is in doubt (ErrInDoubt): then it writes the snapshot it holds
// at that write's number, which settles the doubt. Save returns nil only
// once the snapshot is committed. A key that is not valid fails the whole
// call with ErrInvalidKey before anything is written.
//
// Its cost follows the keys it names, not the keys the outbox holds: one
// lookup per key, and a new key is appended to the snapshot rather than
// sorted in. Only sending the snapshot grows with the outbox.
func (s *Store) Save(ctx context.Context, offsets map[string]uint64) error {
	return s.change(ctx, "save", raise(offsets))
}

// Rewind sets the given keys to the given values, lower ones included: the
// operator's way to re-publish from an earlier point. Other keys keep their
// offsets. Durable and fenced like Save.
func (s *Store) Rewind(ctx context.Context, offsets map[string]uint64) error {
	return s.change(ctx, "rewind", func(e *codec.Edit) error { return set(e, offsets) })
}

// Forget drops keys from the offsets, so that their streams are followed
// from the start again if they reappear. Keys not present are ignored.
// Durable and fenced like Save.
func (s *Store) Forget(ctx context.Context, keys ...string) error {
	return s.change(ctx, "forget", func(e *codec.Edit) error {
		for _, k := range keys {
			if e.Delete(k) {
				continue
			}
			// Not held: only its validity matters.
			if err := ValidateKey(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Replace makes offsets the whole of the stored offsets in one snapshot:
// keys it names are set, lower values included, and keys it lacks are
// dropped. It is the operator's restore (an import of exported offsets),
// atomic where Rewind followed by Forget would write two snapshots.
// Durable and fenced like Save.
func (s *Store) Replace(ctx context.Context, offsets map[string]uint64) error {
	return s.change(ctx, "replace", func(e *codec.Edit) error {
		if err := set(e, offsets); err != nil {
			return err
		}
		// The writer holds sem: s.snap is the snapshot e edits.
		for k := range s.snap.All() {
			if _, ok := offsets[k]; !ok {
				e.Delete(k)
			}
		}
		return nil
	})
}

// raise returns the change of Save: every key of offsets set where it is
// new or higher than the stored value.
func raise(offsets map[string]uint64) func(e *codec.Edit) error {
	return func(e *codec.Edit) error { return merge(e, offsets, higher) }
}

func higher(old, v uint64) bool  { return v > old }
func differs(old, v uint64) bool { return v != old }

// set sets every key of offsets to its value, lower ones included.
func set(e *codec.Edit, offsets map[string]uint64) error { return merge(e, offsets, differs) }

// bulkShare is the share of the outbox's keys from which a change walks
// the whole snapshot (codec.Edit.PutAll) rather than looking its keys up
// one by one: a walk costs about a fifth of a lookup per entry, so from a
// quarter of the keys on it costs no more than the lookups would, and the
// cost of a call stays proportional to the keys it names.
const bulkShare = 4

// merge sets the keys of offsets where moves(old, new) says so, and adds
// those the snapshot lacks.
func merge(e *codec.Edit, offsets map[string]uint64, moves func(old, v uint64) bool) error {
	var fresh []string
	if len(offsets)*bulkShare >= e.Len() && e.Len() > 0 {
		if held := e.PutAll(offsets, moves); held < len(offsets) {
			for k := range offsets {
				if _, _, ok := e.Lookup(k); !ok {
					fresh = append(fresh, k)
				}
			}
		}
		return addKeys(e, fresh, offsets)
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
	return addKeys(e, fresh, offsets)
}

// addKeys adds keys, which the snapshot does not hold, with their values
// in offsets, once ValidateKey accepts every one of them (keys already held
// are not checked again). They are appended in ascending order: sorting
// costs what the call adds, not what the outbox holds, and a snapshot
// whose new keys all sort after the old ones stays canonical (the first
// one always does).
func addKeys(e *codec.Edit, keys []string, offsets map[string]uint64) error {
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
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
