package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

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
