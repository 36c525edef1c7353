package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

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
