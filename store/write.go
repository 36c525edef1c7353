package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

// change runs build on an edit of the current offsets (the next full
// snapshot, or in incremental mode perhaps a delta; named is the number of
// keys the change names, which weighs the choice) and writes the result.
// build leaves the edit unchanged when nothing changes, and then nothing
// is written unless a write of this store is in doubt (see below); an
// error of build fails the call before anything is written. build may run
// twice: again on the adopted offsets when an earlier write of this store
// turns out to have committed.
func (s *Store) change(ctx context.Context, op string, named int, build func(e edit) error) (err error) {
	o := s.startObserving()
	release, err := s.acquire(ctx, op)
	if err != nil {
		s.finishObserving(o, op, err)
		return err
	}
	defer release()
	o.held(s)
	defer func() { s.finishObserving(o, op, err) }() // before release: no other call's adoption counts
	if err = s.confirmOpened(ctx, op); err != nil {
		return err
	}

	for attempt := 0; ; attempt++ {
		// Only writers, which hold sem, change the state and seq: no lock
		// is needed to read them here.
		w, err := s.prepare(op, named, s.succ != nil, build)
		if err != nil || w == nil {
			return err
		}
		// Changed; or unchanged against the offsets held while a write of
		// this store is in doubt at the next number, which may have
		// committed newer ones that a Forget or Rewind must apply to. The
		// unchanged row is written then: it conflicts with that write if
		// it committed (adopted, and the change built again on top of it),
		// waiting for it if it is still committing; otherwise it takes the
		// number, and the doubt is over.
		if err := s.ready(ctx, op, w); err != nil {
			return err
		}
		o.sending(w)
		appendErr := s.appendTo(ctx, s.j, s.next, w)
		var retry bool
		if errors.Is(appendErr, journal.ErrBaseMissing) && w.kind == RowDelta {
			s.baseMissing(ctx, op, appendErr)
			err = appendErr
		} else {
			retry, err = s.settle(ctx, op, w, appendErr)
		}
		if errors.Is(err, journal.ErrBaseMissing) && w.kind == RowDelta && s.forceFull {
			// Nothing written: the journal lacks the row the delta builds
			// on, as the journal said, or as reading the stream after a
			// refusal it could not tell apart found (see resolveConflict).
			// The store's offsets are what was acknowledged: write them,
			// changed, as a full snapshot (baseMissing set forceFull).
			attempt--
			continue
		}
		if err != nil {
			return err
		}
		if !retry {
			s.maybePrune(ctx)
			return nil
		}
		// An earlier write of ours was found committed at seq+1 and
		// adopted, or a delta was found on a gap (forceFull); build again
		// on top of it. Adoption clears the writes in doubt, and a full
		// snapshot clears forceFull, so this happens at most once.
		if attempt > 0 {
			return fmt.Errorf("store: %s %q: adopted more than one lost write at %d (bug)", op, s.outbox, s.seq)
		}
	}
}

// prepare builds the next row of a change, to go through a journal that
// can append a delta safely when canDelta: nil when the change changes
// nothing and no write of this store is in doubt at the next number.
func (s *Store) prepare(op string, named int, canDelta bool, build func(e edit) error) (*write, error) {
	e, err := s.startEdit(named, canDelta)
	if err != nil {
		return nil, wrapOp(op, s.outbox, err)
	}
	if err := build(e); err != nil {
		return nil, wrapOp(op, s.outbox, err)
	}
	if d, err := s.asDelta(e, named, build); err != nil {
		return nil, wrapOp(op, s.outbox, err)
	} else if d != nil {
		e = d
	}
	if !e.changed() && !s.doubtAt(s.seq+1) && !s.forceFull {
		return nil, nil
	}
	w, err := s.newWrite(s.seq+1, e)
	if err != nil {
		return nil, wrapOp(op, s.outbox, err)
	}
	return w, nil
}

// baseMissing makes the next row a full snapshot, after an append of a
// delta that the journal refused because it lacks the row the delta
// builds on: rows lost under the store (a failover to a replica that
// missed the newest commits, a restore), or a SaveTx whose commit was not
// the transaction's. The store's offsets are what it had acknowledged.
func (s *Store) baseMissing(ctx context.Context, op string, err error) {
	s.forceFull = true
	s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "offsetstore: the journal lacks the row a delta builds on; writing a full snapshot",
		slog.String("outbox", s.outbox), slog.String("op", op), slog.String("error", err.Error()))
}

// doubtAt reports whether a write of this store is in doubt at seq.
func (s *Store) doubtAt(seq uint64) bool { return len(s.doubt) > 0 && s.doubtSeq == seq }

// acquire takes the writer's semaphore, or gives up when ctx is done
// first, and fails on a fenced store. release gives the semaphore back.
func (s *Store) acquire(ctx context.Context, op string) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: %s %q: %w", op, s.outbox, err)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("store: %s %q: %w", op, s.outbox, ctx.Err())
	}
	release = func() { <-s.sem }
	if f := s.fencedErr(); f != nil {
		release()
		return nil, f
	}
	return release, nil
}

// write is one snapshot row on its way to the journal: the edit that
// makes it and the event that carries it.
type write struct {
	seq  uint64
	kind RowKind
	full *codec.Edit // a full snapshot
	// A delta: its keys set and removed.
	set     map[string]uint64
	removed []string
	ev      journal.Event
}

func (s *Store) newWrite(seq uint64, e edit) (*write, error) {
	w := &write{seq: seq, ev: journal.Event{
		PersistenceID: s.pid,
		SequenceNr:    seq,
		WriterUUID:    s.cfg.writer,
		Tags:          snapshotTags,
	}}
	switch e := e.(type) {
	case *fullEdit:
		w.kind, w.full = RowFull, e.Edit
		w.ev.Payload, w.ev.Manifest = e.Payload(), codec.Manifest
		if s.cfg.incremental {
			w.ev.Tags = incrementalTags
		}
	case *deltaEdit:
		d := e.delta(s.seq, s.st.root)
		payload, err := codec.EncodeDelta(d)
		if err != nil {
			return nil, err
		}
		w.kind, w.set, w.removed = RowDelta, d.Set, d.Removed
		w.ev.Payload, w.ev.Manifest = payload, codec.DeltaManifest
	}
	return w, nil
}

// snapshotTags are the tags of every snapshot row; incrementalTags those
// of a full snapshot written in incremental mode. Journals copy or send
// them and never change them.
var (
	snapshotTags    = []string{Tag}
	incrementalTags = []string{Tag, IncrementalTag}
)

// ready checks, before anything is sent, that w can be written: its
// sequence number fits, and ctx is not done (a write that never starts is
// not in doubt).
func (s *Store) ready(ctx context.Context, op string, w *write) error {
	if w.seq > journal.MaxSequenceNr {
		return fmt.Errorf("store: %s %q: %w", op, s.outbox, ErrSequenceOverflow)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s %q: nothing written: %w", op, s.outbox, err)
	}
	return nil
}

// appendTo appends w through j: a delta with AppendSuccessor (prepare
// makes a delta only for a journal that has it), so that it never lands on
// a row the journal no longer has; a full snapshot with AppendNext when
// next (j as a NextAppender) is not nil, so that a stale writer is refused
// even where the snapshot it would overwrite was already pruned. Plain Append sees
// only rows that still exist, so after it the stream's head is read: a
// head above w means another writer is ahead and the row just written
// lies under it, never to be loaded (an *aheadError; one more round trip
// per save, on journals without NextAppender only).
func (s *Store) appendTo(ctx context.Context, j journal.Journal, next journal.NextAppender, w *write) error {
	if w.kind == RowDelta {
		return j.(journal.SuccessorAppender).AppendSuccessor(ctx, w.ev)
	}
	if next != nil {
		return next.AppendNext(ctx, w.ev)
	}
	if err := j.Append(ctx, w.ev); err != nil {
		return err
	}
	ahead, err := s.headAbove(ctx, j, w.seq)
	if err != nil {
		return fmt.Errorf("the snapshot was appended, but reading the stream's head after it failed: %w", err)
	}
	if ahead != nil {
		return ahead
	}
	return nil
}

// headAbove reads the stream's head through j after a write that could
// not check it: an *aheadError when the head is above seq (another
// writer's rows, since none of this store's lies above its own write).
func (s *Store) headAbove(ctx context.Context, j journal.Journal, seq uint64) (*aheadError, error) {
	h, err := journal.ReadHead(ctx, j, s.pid)
	if err != nil {
		return nil, err
	}
	if h.Highest > seq {
		return &aheadError{head: h}, nil
	}
	return nil, nil
}

// settle records the outcome err of appending w through the store's own
// journal. retry is true when the row at w.seq turned out to be an earlier
// write of this store, now adopted, so the caller must build its change
// again on top of it.
func (s *Store) settle(ctx context.Context, op string, w *write, err error) (retry bool, _ error) {
	var ahead *aheadError
	switch {
	case err == nil:
		s.commit(w, false)
		return false, nil
	case errors.As(err, &ahead):
		return false, s.fenceAhead(ctx, op, w, ahead)
	case errors.Is(err, journal.ErrUnverified):
		// Appended, and committed with its implicit transaction (a
		// connection under REPEATABLE READ or SERIALIZABLE), but checked
		// only against a snapshot older than the lock: a head above it
		// is another writer's. A head that is not w's own row says the
		// append did not commit as reported: in doubt, as below.
		h, herr := journal.ReadHead(ctx, s.j, s.pid)
		if herr != nil {
			s.addDoubt(w.seq, w.ev.Payload)
			return false, markInDoubt(fmt.Errorf("store: %s %q: snapshot %d was appended, but reading the stream's head to check it failed (in doubt; it is checked at the next write): %w", op, s.outbox, w.seq, herr))
		}
		if h.Highest > w.seq {
			return false, s.fenceAhead(ctx, op, w, &aheadError{head: h})
		}
		if s.isOwnHead(h, w) {
			s.commit(w, false)
			if w.kind == RowDelta {
				// Its row before was not checked either: when it is
				// missing, the delta lies on a gap that Open refuses, and
				// a full snapshot, written now, covers it.
				if _, ok, err := readAt(ctx, s.j, s.pid, w.seq-1); err != nil || !ok {
					s.baseMissing(ctx, op, fmt.Errorf("the row before delta %d is missing or could not be read (%v)", w.seq, err))
					return true, nil
				}
			}
			return false, nil
		}
		// Not matchable as ErrUnverified any more: that says "appended".
		err = fmt.Errorf("reported appended (%v), but the stream's head is %d, not this row", err, h.Highest)
	case errors.Is(err, journal.ErrSequenceConflict), errors.Is(err, journal.ErrRolledBack):
		return s.resolveConflict(ctx, op, w, err)
	case errors.Is(err, journal.ErrInvalidArgument):
		return false, fmt.Errorf("store: %s %q: %w", op, s.outbox, err)
	}
	// The outcome is unknown: the statement may have committed and only
	// the reply been lost (or, journal.ErrNotReplicated, it committed on
	// the server, which stopped waiting for its synchronous standbys).
	// Remember it; a read now, or the conflict of the next write, tells.
	s.addDoubt(w.seq, w.ev.Payload)
	adopted, confirmErr := s.committedDespite(ctx, w, err)
	if adopted {
		return false, nil
	}
	if confirmErr != nil {
		return false, s.notConfirmed(op, w.seq, fmt.Errorf("%w (the write's own error: %w)", confirmErr, err))
	}
	return false, markInDoubt(fmt.Errorf("store: %s %q: write snapshot %d (outcome unknown; it is checked at the next write): %w", op, s.outbox, w.seq, err))
}

// isOwnHead reports whether h is w's row: the newest, at w.seq, written by
// this store, byte for byte.
func (s *Store) isOwnHead(h journal.Head, w *write) bool {
	return h.Highest == w.seq && h.HasLast && h.Last.SequenceNr == w.seq &&
		h.Last.WriterUUID == s.cfg.writer && bytes.Equal(h.Last.Payload, w.ev.Payload)
}

// committedDespite reads the stream's head after a write whose outcome is
// unknown, and adopts w when the head is w's own row, byte for byte, and
// the journal confirmed it on the synchronous standbys (see
// confirmedRead). The row alone is not enough: on a journal without
// AppendNext a row of this store may lie under another writer's newer
// snapshot, where no Open loads it. confirmErr is the confirmation's
// error when w's row was found and could not be confirmed.
func (s *Store) committedDespite(ctx context.Context, w *write, cause error) (adopted bool, confirmErr error) {
	if ctx.Err() != nil {
		return false, nil
	}
	own := false
	confirmErr, err := s.confirmedRead(ctx, func(j journal.Journal) (bool, error) {
		h, err := journal.ReadHead(ctx, j, s.pid)
		own = err == nil && s.isOwnHead(h, w)
		return own, err
	})
	if err != nil || confirmErr != nil || !own {
		return false, confirmErr
	}
	s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "offsetstore: write committed despite an error; adopted",
		slog.String("outbox", s.outbox), slog.Uint64("seq", w.seq), slog.String("error", cause.Error()))
	s.commit(w, true)
	return true, nil
}

// commit records w as durable: its edit becomes the current offsets.
func (s *Store) commit(w *write, adopted bool) {
	info := Info{WrittenAt: time.Now(), Writer: s.cfg.writer, Kind: w.kind, Mode: s.cfg.mode()}
	s.advance(w.seq, adopted, info, func() {
		if w.kind == RowFull && s.cfg.incremental {
			s.stats.Compactions++
		}
		if w.kind == RowFull {
			s.st.fullCommitted(w.full, w.seq)
			s.forceFull = false
			return
		}
		s.st.deltaCommitted(w.set, w.removed, len(w.ev.Payload))
	})
}

// advance records the snapshot at seq as durable; update makes it s.snap
// and runs under mu.
func (s *Store) advance(seq uint64, adopted bool, info Info, update func()) {
	s.doubt = nil
	s.saves++
	s.mu.Lock()
	update()
	s.seq, s.info = seq, info
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
