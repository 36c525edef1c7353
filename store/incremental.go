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

// mustFull reports whether the next row is a full snapshot whatever the
// change: in full mode, for Replace (named is replaceAll), for the first
// row of a chain, after WithMaxDeltas deltas, when the journal lacks the
// row a delta would build on (forceFull), or when the journal the row goes
// through cannot append a delta safely (canDelta false: no
// journal.SuccessorAppender). Only a writer calls it.
func (s *Store) mustFull(named int, canDelta bool) bool {
	st := &s.st
	return !s.cfg.incremental || !canDelta || s.forceFull || named == replaceAll ||
		st.root == 0 || st.deltas >= s.cfg.maxDeltas
}

// deltaFits reports whether a delta of keys keys, at the snapshot's mean
// entry size, stays within the compaction bound. It costs O(1), so that a
// change of every key costs no more than in full mode.
func (s *Store) deltaFits(keys int) bool {
	st := &s.st
	mean := float64(st.rootBytes) / float64(max(st.len(), 1))
	est := float64(deltaHeader) + float64(keys)*mean
	return float64(st.deltaBytes)+est <= s.cfg.ratio*float64(st.rootBytes)
}

// deltaHeader is the size of a delta without keys.
var deltaHeader = codec.DeltaLen(nil, nil)

// startEdit starts the next row's edit for a change naming named keys,
// to be written through a journal that can append a delta safely when
// canDelta: a delta when the change is small enough by the keys it names,
// else a full snapshot that counts the keys that move (see rebuilt).
func (s *Store) startEdit(named int, canDelta bool) (edit, error) {
	full := s.mustFull(named, canDelta)
	if !full && s.deltaFits(named) {
		return newDeltaEdit(&s.st, max(named, 0)), nil
	}
	if err := s.ensureSnap(); err != nil {
		return nil, err
	}
	return &fullEdit{Edit: s.st.snap.Edit(), count: !full}, nil
}

// asDelta returns, for a full snapshot e built by a change that named many
// keys but moved few (a caller that saves its whole map), a delta of the
// same change when it stays within the compaction bound; else nil. build
// runs again on the delta: the writer holds sem, so it sees the same
// offsets.
func (s *Store) asDelta(e edit, named int, build func(e edit) error) (edit, error) {
	fe, ok := e.(*fullEdit)
	if !ok || !fe.count || !s.deltaFits(fe.moved) {
		return nil, nil
	}
	d := newDeltaEdit(&s.st, fe.moved)
	if err := build(d); err != nil {
		return nil, err
	}
	return d, nil
}
