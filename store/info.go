package store

import "time"

// RowKind is the kind of a snapshot row: a full snapshot or a delta.
type RowKind int

const (
	// RowFull is a full snapshot (manifest codec.Manifest), the format
	// every reader, the original Rust one included, understands.
	RowFull RowKind = iota
	// RowDelta is a delta on the row before it (manifest
	// codec.DeltaManifest), written in incremental mode.
	RowDelta
)

func (k RowKind) String() string {
	if k == RowDelta {
		return "delta"
	}
	return "full"
}

// Mode is how an outbox's snapshots are written.
type Mode int

const (
	// ModeFull writes a full snapshot per save (the default).
	ModeFull Mode = iota
	// ModeIncremental writes deltas between full snapshots
	// (WithIncremental).
	ModeIncremental
)

func (m Mode) String() string {
	if m == ModeIncremental {
		return "incremental"
	}
	return "full"
}

// Info describes the newest snapshot row of an outbox as a store knows it:
// the one it loaded at Open or wrote last.
type Info struct {
	// SequenceNr is the row's sequence number, 0 when there is none.
	SequenceNr uint64
	// WrittenAt is the row's written_at when Open loaded it; for a row
	// this store wrote, the time its write returned, by this process's
	// clock. Zero when there is no row.
	WrittenAt time.Time
	// Writer is the row's writer id.
	Writer string
	// Kind is the row's kind.
	Kind RowKind
	// Mode is ModeIncremental when the outbox is written incrementally:
	// the row is a delta, or a full snapshot written by a store in
	// incremental mode.
	Mode Mode
	// Keys is the number of keys of the offsets.
	Keys int
	// Chain is the number of deltas above the newest full snapshot, which
	// an Open reads and applies.
	Chain int
}

// Info returns what the store knows of the outbox's newest snapshot row.
func (s *Store) Info() Info {
	s.mu.RLock()
	defer s.mu.RUnlock()
	info := s.info
	info.SequenceNr = s.seq
	info.Keys = s.st.len()
	info.Chain = s.st.deltas
	return info
}
