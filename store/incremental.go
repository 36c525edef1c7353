package store

import (
	"fmt"

	"github.com/outboxkit/offsetstore/codec"
)

// Defaults of incremental mode.
const (
	// DefaultCompactionRatio is the compaction bound by default: a full
	// snapshot is written once the deltas above the last one would exceed
	// its size. Chosen by measurement (see the README): at 1.0 the write
	// and WAL cost of the full snapshots, spread over the deltas between
	// them, is about one more delta per save, and an Open reads at most
	// twice the snapshot's bytes.
	DefaultCompactionRatio = 1.0
	// DefaultMaxDeltas bounds the deltas above a full snapshot by default,
	// so that an Open of an outbox saved in many tiny steps reads a bounded
	// number of rows.
	DefaultMaxDeltas = 1000
)

// replaceAll is the number of keys Replace names for the choice of row:
// it always writes a full snapshot.
const replaceAll = -1

// IncrementalTag is the tag, besides Tag, of a full snapshot written by a
// store in incremental mode, so that a reader of the newest row tells the
// outbox's mode (Info.Mode) also right after a compaction.
const IncrementalTag = "outbox-offsets-incremental"

// WithIncremental makes the store write, instead of a full snapshot per
// save, a delta of the keys that changed (a row whose manifest is
// codec.DeltaManifest, which the full-snapshot decoders refuse), and a full
// snapshot only when the deltas above the last one would grow past
// WithCompactionRatio of its size, or their number past WithMaxDeltas, or
// when a change names so many keys that a delta would be as large (every
// key moving costs what it costs in full mode). A save then costs what
// the change costs, in time and in bytes written, even when the outbox
// holds a million keys.
//
// Open reads the newest full snapshot and the deltas above it in one round
// trip (journal.ChainReader) and checks the chain: a gap or a delta whose
// base is missing fails with ErrCorruptSnapshot. Pruning never cuts the
// chain: the rows from the newest full snapshot up are kept, beside the
// newest WithRetention rows. Every other guarantee of the store holds as
// in full mode. Either mode opens an outbox written in the other and goes
// on in its own.
//
// The original Rust format reads only full snapshots: keep an outbox that
// a reader of that format loads in the default, full mode. Defaults to
// full mode.
func WithIncremental() Option { return func(c *config) { c.incremental = true } }

// WithCompactionRatio sets, in incremental mode, how large the deltas
// above the newest full snapshot may grow, as a share of its size in
// bytes, before the next save writes a full snapshot instead. Higher
// ratios write fewer full snapshots (cheaper saves) and make Open read
// more. r must be positive. Defaults to DefaultCompactionRatio (1.0).
func WithCompactionRatio(r float64) Option { return func(c *config) { c.ratio = r } }

// WithMaxDeltas sets, in incremental mode, the most deltas above the
// newest full snapshot: the save after the n-th writes a full snapshot.
// n must be at least 1. Defaults to DefaultMaxDeltas (1000).
func WithMaxDeltas(n int) Option { return func(c *config) { c.maxDeltas = n } }

func (c *config) validateIncremental() error {
	if !(c.ratio > 0) {
		return fmt.Errorf("%w: compaction ratio %v is not positive", ErrInvalidOption, c.ratio)
	}
	if c.maxDeltas < 1 {
		return fmt.Errorf("%w: max deltas %d is below 1", ErrInvalidOption, c.maxDeltas)
	}
	return nil
}

// wantsFull reports whether the next row, for a change naming named keys
// (replaceAll for Replace), is a full snapshot. Only a writer calls it.
func (s *Store) wantsFull(named int) bool {
	st := &s.st
	if !s.cfg.incremental || named == replaceAll || st.root == 0 || st.deltas >= s.cfg.maxDeltas {
		return true
	}
	// The delta's size, estimated from the keys named at the snapshot's
	// mean entry size: O(1), so that a change of every key costs no more
	// than in full mode.
	keys := max(st.len(), 1)
	est := float64(deltaHeader) + float64(named)*float64(st.rootBytes)/float64(keys)
	return float64(st.deltaBytes)+est > s.cfg.ratio*float64(st.rootBytes)
}

// deltaHeader is the size of a delta without keys.
var deltaHeader = codec.DeltaLen(nil, nil)

// startEdit starts the next row's edit for a change naming named keys.
func (s *Store) startEdit(named int) (edit, error) {
	if !s.wantsFull(named) {
		return newDeltaEdit(&s.st, max(named, 0)), nil
	}
	if err := s.ensureSnap(); err != nil {
		return nil, err
	}
	return fullEdit{s.st.snap.Edit()}, nil
}
