package store

import (
	"context"
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
// sorted in. In full mode only sending the snapshot grows with the outbox;
// in incremental mode (WithIncremental) the row written is a delta of the
// keys that moved, and a full snapshot only now and then (see
// WithCompactionRatio).
func (s *Store) Save(ctx context.Context, offsets map[string]uint64) error {
	return s.change(ctx, "save", len(offsets), raise(offsets))
}

// Rewind sets the given keys to the given values, lower ones included: the
// operator's way to re-publish from an earlier point. Other keys keep their
// offsets. Durable and fenced like Save.
func (s *Store) Rewind(ctx context.Context, offsets map[string]uint64) error {
	return s.change(ctx, "rewind", len(offsets), func(e edit) error { return e.merge(offsets, differs) })
}

// Forget drops keys from the offsets, so that their streams are followed
// from the start again if they reappear. Keys not present are ignored.
// Durable and fenced like Save.
func (s *Store) Forget(ctx context.Context, keys ...string) error {
	return s.change(ctx, "forget", len(keys), func(e edit) error {
		for _, k := range keys {
			if e.drop(k) {
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
// atomic where Rewind followed by Forget would write two snapshots. It
// always writes a full snapshot. Durable and fenced like Save.
func (s *Store) Replace(ctx context.Context, offsets map[string]uint64) error {
	return s.change(ctx, "replace", replaceAll, func(e edit) error {
		if err := e.merge(offsets, differs); err != nil {
			return err
		}
		// The writer holds sem: s.st is the state e edits.
		var gone []string
		for k := range s.st.keys() {
			if _, ok := offsets[k]; !ok {
				gone = append(gone, k)
			}
		}
		for _, k := range gone {
			e.drop(k)
		}
		return nil
	})
}

// raise returns the change of Save: every key of offsets set where it is
// new or higher than the stored value.
func raise(offsets map[string]uint64) func(e edit) error {
	return func(e edit) error { return e.merge(offsets, higher) }
}

func higher(old, v uint64) bool  { return v > old }
func differs(old, v uint64) bool { return v != old }
