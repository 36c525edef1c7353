package store

import (
	"context"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

// loadState sets the state Open found: the snapshot last (nil for none)
// at sequence number seq. It runs before the store is shared.
func (s *Store) loadState(seq uint64, last *journal.Event) error {
	var (
		snap *codec.Snapshot
		err  error
	)
	if last != nil {
		snap, err = parseSnapshot(*last)
	} else {
		snap, err = codec.NewSnapshot(nil)
	}
	if err != nil {
		return err
	}
	s.snap, s.seq = snap, seq
	if last != nil {
		s.info = Info{WrittenAt: last.WrittenAt, Writer: last.WriterUUID}
	}
	return nil
}

// parseSnapshot reads the snapshot row ev, indexed for editing. An unknown
// manifest or an undecodable payload is a *CorruptSnapshotError.
func parseSnapshot(ev journal.Event) (*codec.Snapshot, error) {
	if ev.Manifest != codec.Manifest {
		return nil, &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: errUnknownManifest}
	}
	snap, err := codec.ParseSnapshot(ev.Payload)
	if err != nil {
		return nil, &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: err}
	}
	return snap, nil
}

// Load returns a copy of the current offsets: those of the newest snapshot
// written or loaded, never ahead of what is durable. It does no I/O.
func (s *Store) Load(ctx context.Context) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap.Map(), nil
}
