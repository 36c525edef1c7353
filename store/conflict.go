package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

// resolveConflict handles a write of w refused with cause: a conflict at
// w.seq, or a write the backend rolled back (journal.ErrRolledBack). It
// reads through the store's own journal what is at w.seq: an earlier write
// of this store whose acknowledgement was lost (adopted), another writer's
// row (which fences this store), or, for a rolled-back write, nothing:
// with the stream's head below w.seq the call may be retried, with it at or
// above, another writer saved and pruned since the write's snapshot (which
// fences this store too). retry is true when an earlier write in doubt was
// adopted and the change must be built again on top of it.
func (s *Store) resolveConflict(ctx context.Context, op string, w *write, cause error) (retry bool, _ error) {
	seq := w.seq
	rolledBack := !errors.Is(cause, journal.ErrSequenceConflict)
	// What is at seq, read on one connection; a row of this store to adopt
	// is confirmed on the synchronous standbys first (see confirmedRead).
	var ev journal.Event
	var ok bool
	confirmErr, err := s.confirmedRead(ctx, func(j journal.Journal) (bool, error) {
		var err error
		ev, ok, err = readAt(ctx, j, s.pid, seq)
		return err == nil && ok && ev.WriterUUID == s.cfg.writer &&
			(bytes.Equal(ev.Payload, w.ev.Payload) || s.inDoubt(seq, ev.Payload)), err
	})
	if confirmErr != nil {
		// Ours, and perhaps only on the primary: still in doubt.
		s.addDoubt(seq, ev.Payload)
		return false, s.notConfirmed(op, seq, confirmErr)
	}
	if err != nil {
		if rolledBack {
			return false, fmt.Errorf("store: %s %q: snapshot %d rolled back, nothing written (%w); reading what is there: %w", op, s.outbox, seq, cause, err)
		}
		return false, fmt.Errorf("store: %s %q: snapshot %d exists; reading it: %w", op, s.outbox, seq, err)
	}
	if ok && ev.WriterUUID == s.cfg.writer {
		if bytes.Equal(ev.Payload, w.ev.Payload) {
			s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "offsetstore: found own snapshot committed; adopted",
				slog.String("outbox", s.outbox), slog.Uint64("seq", seq))
			s.commit(w, true)
			return false, nil
		}
		if s.inDoubt(seq, ev.Payload) {
			if err := s.adoptInDoubt(ctx, op, ev); err != nil {
				return false, err
			}
			return true, nil
		}
	}
	f := &FencedError{Outbox: s.outbox, SequenceNr: seq}
	var headErr error
	if ok {
		f.Writer = ev.WriterUUID
	} else {
		// The row at seq is gone (pruned) or was never there. After a
		// conflict a row at or above it exists; after a rollback one may
		// (a peer saved and pruned since the transaction's snapshot) or
		// not. Either way a head at or above seq is another writer's:
		// name the writer of the newest row.
		h, err := journal.ReadHead(ctx, s.j, s.pid)
		switch {
		case err != nil && rolledBack:
			return false, fmt.Errorf("store: %s %q: snapshot %d rolled back, nothing written (%w); reading the stream's head: %w", op, s.outbox, seq, cause, err)
		case err != nil:
			headErr = err
		case rolledBack && h.Highest < seq:
			return false, fmt.Errorf("store: %s %q: snapshot %d: nothing written; the call may be retried: %w", op, s.outbox, seq, cause)
		case h.Highest < seq && w.kind == RowDelta:
			// Refused, yet the stream ends below the delta: its base is
			// missing, and the journal could not tell (AppendSuccessor,
			// whose read after the refusal failed). No writer is ahead.
			bm := &journal.BaseMissingError{PersistenceID: s.pid, SequenceNr: seq, Highest: h.Highest}
			s.baseMissing(ctx, op, bm)
			return false, fmt.Errorf("store: %s %q: snapshot %d: %w; nothing written, the next write is a full snapshot (the refusal: %v)", op, s.outbox, seq, bm, cause)
		case h.Highest < seq:
			// Refused, yet nothing is at or above seq now: the rows that
			// refused it are gone (lost under the store). No writer is
			// ahead.
			return false, fmt.Errorf("store: %s %q: snapshot %d: refused (%v), but the stream's head is %d: nothing written; the call may be retried", op, s.outbox, seq, cause, h.Highest)
		case h.HasLast:
			f.SequenceNr, f.Writer = h.Last.SequenceNr, h.Last.WriterUUID
		case h.Highest > 0:
			f.SequenceNr = h.Highest
		}
	}
	s.mu.Lock()
	s.fenced = f
	s.mu.Unlock()
	s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "offsetstore: fenced by another writer",
		slog.String("outbox", s.outbox), slog.Uint64("seq", f.SequenceNr), slog.String("writer", f.Writer))
	if headErr != nil {
		return false, fmt.Errorf("%w (%s: %v; reading the newest snapshot: %v)", f, op, cause, headErr)
	}
	return false, fmt.Errorf("%w (%s: %v)", f, op, cause)
}

// adoptInDoubt makes ev, the row of an earlier write of this store that
// was in doubt until now, the store's offsets: a full snapshot replaces
// them, a delta (which builds on the offsets the store holds, as every
// write of it does) is applied to them.
func (s *Store) adoptInDoubt(ctx context.Context, op string, ev journal.Event) error {
	fail := func(err error) error {
		return fmt.Errorf("store: %s %q: adopt snapshot %d: %w", op, s.outbox, ev.SequenceNr,
			&CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: err})
	}
	var update func()
	switch ev.Manifest {
	case codec.Manifest:
		vals, err := codec.Decode(ev.Payload)
		if err != nil {
			return fail(err)
		}
		update = func() {
			s.st = state{vals: vals, tmpl: ev.Payload, root: ev.SequenceNr, rootBytes: len(ev.Payload)}
			s.forceFull = false
			if s.cfg.incremental {
				s.stats.Compactions++
			}
		}
	case codec.DeltaManifest:
		d, err := codec.DecodeDelta(ev.Payload)
		if err != nil {
			return fail(err)
		}
		if d.Base != s.seq || d.Root != s.st.root {
			return fail(&chainError{base: d.Base, root: d.Root, wantBase: s.seq, wantRoot: s.st.root})
		}
		update = func() { s.st.deltaCommitted(d.Set, d.Removed, len(ev.Payload)) }
	default:
		return fail(errUnknownManifest)
	}
	s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "offsetstore: earlier write found committed; adopted",
		slog.String("outbox", s.outbox), slog.Uint64("seq", ev.SequenceNr))
	info := rowInfo(ev)
	s.advance(ev.SequenceNr, true, info, update)
	return nil
}

// aheadError reports that a plain Append of this store's snapshot
// succeeded under a stream whose head is already higher: another writer
// owns the outbox.
type aheadError struct{ head journal.Head }

func (e *aheadError) Error() string {
	return fmt.Sprintf("the stream's head is at %d, above the snapshot just written", e.head.Highest)
}

// fenceAhead fences the store after an aheadError: its write landed under
// another writer's newer snapshot, where no reader loads it.
func (s *Store) fenceAhead(ctx context.Context, op string, w *write, e *aheadError) error {
	f := &FencedError{Outbox: s.outbox, SequenceNr: e.head.Highest}
	if e.head.HasLast {
		f.SequenceNr, f.Writer = e.head.Last.SequenceNr, e.head.Last.WriterUUID
	}
	s.mu.Lock()
	s.fenced = f
	s.mu.Unlock()
	s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "offsetstore: fenced by another writer",
		slog.String("outbox", s.outbox), slog.Uint64("seq", f.SequenceNr), slog.String("writer", f.Writer))
	return fmt.Errorf("%w (%s: snapshot %d was appended under it and is ignored)", f, op, w.seq)
}

// inDoubt reports whether payload is one of this store's writes in doubt
// at seq.
func (s *Store) inDoubt(seq uint64, payload []byte) bool {
	if !s.doubtAt(seq) {
		return false
	}
	_, mine := s.doubt[sha256.Sum256(payload)]
	return mine
}

// readAt reads the row of pid at seq through j.
func readAt(ctx context.Context, j journal.Journal, pid string, seq uint64) (journal.Event, bool, error) {
	for ev, err := range j.Replay(ctx, pid, seq, seq, 1) {
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
