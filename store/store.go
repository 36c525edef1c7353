package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

const (
	// MaxNameLen bounds an outbox name in bytes. The persistence id
	// outbox::<name>::offsets must fit a B-tree index entry of the journal.
	MaxNameLen = 1000
	// MaxKeyLen bounds an offset key in bytes. Keys are persistence ids of
	// the source journal, which cannot be longer than an index entry either.
	MaxKeyLen = 2048

	// Tag is the tag on every snapshot row.
	Tag = codec.Manifest
)

// PersistenceID returns the journal persistence id under which the
// snapshots of outbox are kept: outbox::<outbox>::offsets.
func PersistenceID(outbox string) string { return "outbox::" + outbox + "::offsets" }

// Store keeps the offsets of one outbox: a map from source persistence id
// to the last published sequence number. Every change is written as one
// snapshot row of the journal. A Store is safe for concurrent use; writes
// are serialised.
type Store struct {
	j      journal.Journal
	next   journal.NextAppender // j, when it can append conditionally; else nil
	outbox string
	pid    string
	cfg    config

	// sem serialises writers and lets a waiting writer give up on its ctx.
	sem chan struct{}

	// Guarded by sem.
	// doubt holds the payload digests of the writes at doubtSeq whose
	// outcome is unknown (the reply was lost): any one of them may be the
	// row found there later. Digests, not payloads, so that a long outage
	// of failing saves costs little memory.
	doubt      map[[sha256.Size]byte]struct{}
	doubtSeq   uint64
	pruned     uint64 // snapshots up to here are known pruned
	saves      int    // writes since the last prune or prune attempt
	pruneFirst bool   // the first write after Open prunes what was left
	// enc is the current snapshot as this store encoded it, with the
	// position of every value, so that a change of existing keys' values
	// (the common save) patches a copy instead of encoding again. nil until
	// the first write.
	enc *encoded

	// mu guards what readers see; only writers holding sem change it.
	mu      sync.RWMutex
	offsets map[string]uint64 // as durably written at seq
	seq     uint64            // the newest snapshot's sequence number, 0 for none
	fenced  *FencedError
	stats   Stats
}

// Stats counts what a store did since Open.
type Stats struct {
	// Writes is the number of snapshots written (adopted ones included).
	Writes int64
	// Adopted is the number of writes whose acknowledgement was lost and
	// that were found committed and adopted.
	Adopted int64
	// Prunes is the number of successful prunes; PruneErrors of failed ones
	// (each is retried at the next prune).
	Prunes, PruneErrors int64
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

// encoded is a snapshot payload with its keys in sorted order and the
// byte position of each key's value.
type encoded struct {
	payload []byte
	keys    []string
	pos     []int
}

// patch returns the payload with the values of d.set, or nil when d
// changes the key set and the snapshot must be encoded anew.
func (e *encoded) patch(d *delta) []byte {
	if e == nil || len(d.del) > 0 {
		return nil
	}
	idx := make([]int, 0, len(d.set))
	for k := range d.set {
		i, ok := slices.BinarySearch(e.keys, k)
		if !ok {
			return nil
		}
		idx = append(idx, i)
	}
	out := bytes.Clone(e.payload)
	for _, i := range idx {
		binary.LittleEndian.PutUint64(out[e.pos[i]:], d.set[e.keys[i]])
	}
	return out
}

// encode encodes m, and indexes the result: keys sorted as the codec
// writes them, each value after its u32 length and its bytes.
func encode(m map[string]uint64) (*encoded, error) {
	payload, err := codec.Encode(m)
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(m))
	pos := make([]int, len(keys))
	off := 4
	for i, k := range keys {
		off += 4 + len(k)
		pos[i] = off
		off += 8
	}
	if off != len(payload) {
		return nil, fmt.Errorf("store: snapshot layout mismatch: %d bytes indexed, %d encoded", off, len(payload))
	}
	return &encoded{payload: payload, keys: keys, pos: pos}, nil
}

type write struct {
	seq uint64
	d   *delta
	enc *encoded
}

// Open opens the store of outbox on j and loads its newest snapshot. A
// journal error, or a newest snapshot that cannot be decoded, fails Open:
// it never falls back to empty offsets.
func Open(ctx context.Context, j journal.Journal, outbox string, opts ...Option) (*Store, error) {
	if j == nil {
		return nil, fmt.Errorf("%w: journal is nil", ErrInvalidOption)
	}
	if err := validateName(outbox); err != nil {
		return nil, err
	}
	cfg := config{keep: DefaultRetention, pruneEvery: DefaultPruneInterval, logger: discard}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.writer == "" {
		cfg.writer = newUUID()
	}
	if cfg.logger == nil {
		cfg.logger = discard
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	next, _ := j.(journal.NextAppender)
	s := &Store{
		j:      j,
		next:   next,
		outbox: outbox,
		pid:    PersistenceID(outbox),
		cfg:    cfg,
		sem:    make(chan struct{}, 1),

		pruneFirst: true,
	}
	ev, ok, err := j.Last(ctx, s.pid)
	if err != nil {
		return nil, fmt.Errorf("store: open %q: load newest snapshot: %w", outbox, err)
	}
	if ok {
		m, err := decode(ev)
		if err != nil {
			return nil, fmt.Errorf("store: open %q: %w", outbox, err)
		}
		s.offsets, s.seq = m, ev.SequenceNr
		return s, nil
	}
	// No snapshot to read. Every one may have been deleted: continue above
	// the highest ever written, or the first save would look fenced.
	hi, err := j.HighestSequenceNr(ctx, s.pid)
	if err != nil {
		return nil, fmt.Errorf("store: open %q: read highest sequence number: %w", outbox, err)
	}
	s.offsets, s.seq = map[string]uint64{}, hi
	return s, nil
}

func decode(ev journal.Event) (map[string]uint64, error) {
	if ev.Manifest != codec.Manifest {
		return nil, &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: errUnknownManifest}
	}
	m, err := codec.Decode(ev.Payload)
	if err != nil {
		return nil, &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: err}
	}
	return m, nil
}

// PersistenceID returns the journal persistence id of this outbox's
// snapshots.
func (s *Store) PersistenceID() string { return s.pid }

// Outbox returns the outbox name.
func (s *Store) Outbox() string { return s.outbox }

// WriterID returns the writer id stamped on this store's snapshots.
func (s *Store) WriterID() string { return s.cfg.writer }

// SequenceNr returns the sequence number of the newest snapshot this store
// knows to be written (0 before the first).
func (s *Store) SequenceNr() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seq
}

// Stats returns counters of what the store did since Open.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stats
}

// Load returns a copy of the current offsets: those of the newest snapshot
// written or loaded, never ahead of what is durable. It does no I/O.
func (s *Store) Load(ctx context.Context) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.offsets), nil
}

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

// change asks build for the change to the current offsets and writes the
// result. build returns nil when nothing changes; it must not modify cur.
// It may run twice: again on the adopted offsets when an earlier write of
// this store turns out to have committed.
func (s *Store) change(ctx context.Context, op string, build func(cur map[string]uint64) *delta) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("store: %s %q: %w", op, s.outbox, ctx.Err())
	}
	defer func() { <-s.sem }()

	if f := s.fencedErr(); f != nil {
		return f
	}
	for attempt := 0; ; attempt++ {
		// Only writers, which hold sem, change offsets and seq: no lock is
		// needed to read them here.
		d := build(s.offsets)
		if d == nil {
			return nil
		}
		retry, err := s.write(ctx, op, s.seq+1, d)
		if err != nil {
			return err
		}
		if !retry {
			s.maybePrune(ctx)
			return nil
		}
		// An earlier write of ours was found committed at seq+1 and
		// adopted; build again on top of it. Adoption clears the writes in
		// doubt, so this happens at most once.
		if attempt > 0 {
			return fmt.Errorf("store: %s %q: adopted more than one lost write at %d (bug)", op, s.outbox, s.seq)
		}
	}
}

// write appends the offsets changed by d as snapshot seq. retry is true
// when the row at seq turned out to be an earlier write of this store, now
// adopted, so the caller must build its change again on top of it.
func (s *Store) write(ctx context.Context, op string, seq uint64, d *delta) (retry bool, err error) {
	if seq > journal.MaxSequenceNr {
		return false, fmt.Errorf("store: %s %q: %w", op, s.outbox, ErrSequenceOverflow)
	}
	var enc *encoded
	if p := s.enc.patch(d); p != nil {
		enc = &encoded{payload: p, keys: s.enc.keys, pos: s.enc.pos}
	} else {
		next := maps.Clone(s.offsets)
		if next == nil {
			next = map[string]uint64{}
		}
		d.apply(next)
		if enc, err = encode(next); err != nil {
			return false, fmt.Errorf("store: %s %q: %w", op, s.outbox, err)
		}
	}
	w := &write{seq: seq, d: d, enc: enc}
	ev := journal.Event{
		PersistenceID: s.pid,
		SequenceNr:    seq,
		Payload:       enc.payload,
		Manifest:      codec.Manifest,
		WriterUUID:    s.cfg.writer,
		Tags:          []string{Tag},
	}
	// With AppendNext, a stale writer is refused even where the snapshot it
	// would overwrite was already pruned; plain Append sees only rows that
	// still exist.
	if s.next != nil {
		err = s.next.AppendNext(ctx, ev)
	} else {
		err = s.j.Append(ctx, ev)
	}
	if err == nil {
		s.commit(w, false)
		return false, nil
	}
	if errors.Is(err, journal.ErrSequenceConflict) {
		return s.resolveConflict(ctx, op, w, err)
	}
	if errors.Is(err, journal.ErrInvalidArgument) {
		return false, fmt.Errorf("store: %s %q: %w", op, s.outbox, err)
	}
	// The outcome is unknown: the statement may have committed and only
	// the reply been lost. Remember it; a read now, or the conflict of the
	// next write, tells.
	s.addDoubt(seq, enc.payload)
	if ctx.Err() == nil {
		if ev, ok, rerr := s.readAt(ctx, seq); rerr == nil && ok && ev.WriterUUID == s.cfg.writer && bytes.Equal(ev.Payload, enc.payload) {
			s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "offsetstore: write committed despite an error; adopted",
				slog.String("outbox", s.outbox), slog.Uint64("seq", seq), slog.String("error", err.Error()))
			s.commit(w, true)
			return false, nil
		}
	}
	return false, fmt.Errorf("store: %s %q: write snapshot %d (outcome unknown; it is checked at the next write): %w", op, s.outbox, seq, err)
}

// resolveConflict handles a conflict at seq: the row there is either an
// earlier write of this store whose acknowledgement was lost, or another
// writer's, which fences this store.
func (s *Store) resolveConflict(ctx context.Context, op string, w *write, conflict error) (bool, error) {
	seq := w.seq
	ev, ok, err := s.readAt(ctx, seq)
	if err != nil {
		return false, fmt.Errorf("store: %s %q: snapshot %d exists; reading it: %w", op, s.outbox, seq, err)
	}
	if ok && ev.WriterUUID == s.cfg.writer {
		if bytes.Equal(ev.Payload, w.enc.payload) {
			s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "offsetstore: found own snapshot committed; adopted",
				slog.String("outbox", s.outbox), slog.Uint64("seq", seq))
			s.commit(w, true)
			return false, nil
		}
		if _, mine := s.doubt[sha256.Sum256(ev.Payload)]; mine && s.doubtSeq == seq {
			// An earlier write of ours, in doubt until now: its payload is
			// the offsets it meant to write.
			m, err := codec.Decode(ev.Payload)
			if err != nil {
				return false, fmt.Errorf("store: %s %q: adopt snapshot %d: %w", op, s.outbox, seq, err)
			}
			s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "offsetstore: earlier write found committed; adopted",
				slog.String("outbox", s.outbox), slog.Uint64("seq", seq))
			s.advance(seq, nil, true, func() { s.offsets = m })
			return true, nil
		}
	}
	f := &FencedError{Outbox: s.outbox, SequenceNr: seq}
	if ok {
		f.Writer = ev.WriterUUID
	}
	s.mu.Lock()
	s.fenced = f
	s.mu.Unlock()
	s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "offsetstore: fenced by another writer",
		slog.String("outbox", s.outbox), slog.Uint64("seq", seq), slog.String("writer", f.Writer))
	return false, fmt.Errorf("%w (%s: %v)", f, op, conflict)
}

func (s *Store) readAt(ctx context.Context, seq uint64) (journal.Event, bool, error) {
	for ev, err := range s.j.Replay(ctx, s.pid, seq, seq, 1) {
		if err != nil {
			return journal.Event{}, false, err
		}
		return ev, true, nil
	}
	return journal.Event{}, false, nil
}

// addDoubt remembers payload among the writes in doubt at seq.
func (s *Store) addDoubt(seq uint64, payload []byte) {
	if s.doubt == nil || s.doubtSeq != seq {
		s.doubt, s.doubtSeq = map[[sha256.Size]byte]struct{}{}, seq
	}
	if len(s.doubt) < maxDoubt {
		s.doubt[sha256.Sum256(payload)] = struct{}{}
	}
}

// maxDoubt bounds the writes remembered in doubt at one sequence number.
// Past it, a later write may report ErrFenced for a row of its own.
const maxDoubt = 1 << 16

// commit records w as durable.
func (s *Store) commit(w *write, adopted bool) {
	s.advance(w.seq, w.enc, adopted, func() { w.d.apply(s.offsets) })
}

// advance records the snapshot at seq as durable: enc is its encoding (nil
// to encode anew at the next write), update brings s.offsets to it and runs
// under mu.
func (s *Store) advance(seq uint64, enc *encoded, adopted bool, update func()) {
	s.doubt = nil
	s.saves++
	s.enc = enc
	s.mu.Lock()
	update()
	s.seq = seq
	s.stats.Writes++
	if adopted {
		s.stats.Adopted++
	}
	s.mu.Unlock()
}

func (s *Store) fencedErr() *FencedError {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fenced
}

// maybePrune deletes snapshots older than the newest keep, once every
// pruneEvery writes, and at the first write after Open. A failure is
// logged, counted and retried after another pruneEvery writes: the save
// itself is already durable, and a prune that keeps failing (a missing
// grant) must not add a round trip to every save.
func (s *Store) maybePrune(ctx context.Context) {
	s.mu.RLock()
	seq := s.seq
	s.mu.RUnlock()
	if seq <= uint64(s.cfg.keep) {
		return
	}
	to := seq - uint64(s.cfg.keep)
	if to <= s.pruned || (!s.pruneFirst && s.saves < s.cfg.pruneEvery) {
		return
	}
	s.pruneFirst = false
	if err := s.j.DeleteTo(ctx, s.pid, to); err != nil {
		s.saves = 0 // retried after another interval, not at every save
		s.mu.Lock()
		s.stats.PruneErrors++
		s.mu.Unlock()
		s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "offsetstore: pruning old snapshots failed; retried after the next prune interval",
			slog.String("outbox", s.outbox), slog.Uint64("to", to), slog.String("error", err.Error()))
		return
	}
	s.pruned, s.saves = to, 0
	s.mu.Lock()
	s.stats.Prunes++
	s.mu.Unlock()
}

func validateName(name string) error {
	if reason := textProblem(name, MaxNameLen); reason != "" {
		return &invalidError{kind: ErrInvalidName, what: "outbox name", value: name, reason: reason}
	}
	return nil
}

func validateKeys(keys func(func(string) bool)) error {
	for k := range keys {
		if reason := textProblem(k, MaxKeyLen); reason != "" {
			return &invalidError{kind: ErrInvalidKey, what: "key", value: k, reason: reason}
		}
	}
	return nil
}

func textProblem(s string, maxLen int) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxLen:
		return fmt.Sprintf("is %d bytes long, over the limit of %d", len(s), maxLen)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	}
	return ""
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var discard = slog.New(slog.DiscardHandler)
