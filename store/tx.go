package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/outboxkit/offsetstore/journal"
)

// ErrRetryTx is matched (with errors.Is) by the error of a SaveTx that
// wrote nothing and asks the caller to roll back and run its transaction
// again from the offsets Load returns: it found, where its snapshot
// belonged, an earlier write of this store that had been in doubt (a
// commit whose outcome was unknown) and has now been adopted — nothing is
// lost or done twice, the earlier transaction's writes are the ones that
// committed —, or, in incremental mode, the journal refused its delta for
// lack of the row it builds on (rows lost under the store), and the run
// again writes a full snapshot.
var ErrRetryTx = errors.New("store: an earlier transaction of this store committed; roll back and run the transaction again")

// errRetryAsFull matches ErrRetryTx: a SaveTx whose delta the journal
// refused for lack of the row it builds on; run again, it writes a full
// snapshot.
var errRetryAsFull = fmt.Errorf("roll back and run the transaction again: %w", ErrRetryTx)

// SaveTx saves offsets in the caller's transaction, so that the caller's
// own writes (a sink table in the same database) and the offsets commit
// together or not at all: exactly-once for sinks in the journal's database.
//
// It merges offsets as Save does (monotonic, bad keys refused before any
// write), writes the snapshot through tx, a journal bound to the caller's
// open transaction on the store's table (pgjournal.New(pgxTx)), then calls
// commit (pgxTx.Commit), and records the save in memory only once commit
// returned nil. A SaveTx that changes nothing writes nothing and still
// calls commit, so that the caller's own writes commit. It is serialised
// with every other write of the store from the write through the commit.
//
//   - A failed write, a rollback, a failed commit or a panic in commit
//     leave Load as it was.
//   - A commit whose outcome is unknown (the connection died during
//     COMMIT) is a write in doubt: the error matches ErrInDoubt, and the
//     next write of the store resolves it, as a lost acknowledgement.
//     Running the transaction again from Load is safe (see ErrInDoubt).
//   - Another writer's snapshot at the sequence number: an error matching
//     ErrFenced, returned before commit is called. The caller rolls back,
//     and its own writes vanish with the offsets. The store stays fenced.
//   - This store's own earlier write in doubt found there: adopted, and
//     an error matching ErrRetryTx; commit is not called. On a journal
//     that confirms replication (journal.ReplicatedReader), only once the
//     row is confirmed on the synchronous standbys; otherwise the error
//     matches ErrInDoubt.
//   - A commit that returned nil while tx reports it not known to be on
//     the synchronous standbys (journal.ReplicationReporter: pgjournal on
//     a pool prepared by pgjournal.ConfigurePool, whose server warned that
//     it stopped waiting for them): confirmed first, as an adoption is;
//     in doubt (ErrInDoubt) when that fails.
//
// Conflicts are resolved by reading through the store's own journal, never
// through tx, which the conflict may have aborted.
//
// tx must be a top-level transaction and commit its real commit: a nested
// pgx transaction (tx.Begin, a savepoint) "commits" by releasing the
// savepoint while the outer transaction may still roll back, and the store
// would then hold offsets that are not durable.
//
// The caller's transaction holds its connection while SaveTx waits for
// the store's other writes. When many goroutines open transactions and
// call SaveTx, take their transactions from a pool other than the one the
// store's own journal uses (or bound them below its size): otherwise the
// write holding the store may wait for a connection that only the
// transactions waiting behind it can give back. ctx bounds the wait.
func (s *Store) SaveTx(ctx context.Context, tx journal.Journal, offsets map[string]uint64, commit func(context.Context) error) (err error) {
	const op = "save in transaction"
	o := s.startObserving()
	if tx == nil || commit == nil {
		err := fmt.Errorf("store: %s %q: %w", op, s.outbox, &journal.InvalidArgumentError{Field: "transaction", Reason: "tx and commit must not be nil"})
		s.finishObserving(o, op, err)
		return err
	}
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

	// A delta only through a transaction's journal that appends it on the
	// condition that it follows the newest row.
	_, canDelta := tx.(journal.SuccessorAppender)
	build := raise(offsets)
	e, err := s.startEdit(len(offsets), canDelta)
	if err != nil {
		return wrapOp(op, s.outbox, err)
	}
	if err := build(e); err != nil {
		return wrapOp(op, s.outbox, err)
	}
	if d, err := s.asDelta(e, len(offsets), build); err != nil {
		return wrapOp(op, s.outbox, err)
	} else if d != nil {
		e = d
	}
	if !e.changed() {
		if err := commit(ctx); err != nil {
			return fmt.Errorf("store: %s %q: commit (no change to the offsets): %w", op, s.outbox, err)
		}
		return nil
	}
	w, err := s.newWrite(s.seq+1, e)
	if err != nil {
		return wrapOp(op, s.outbox, err)
	}
	if err := s.ready(ctx, op, w); err != nil {
		return err
	}
	o.sending(w)
	if err = appendInTx(ctx, tx, w); err != nil {
		if !errors.Is(err, journal.ErrUnverified) {
			return s.txAppendFailed(ctx, op, w, err)
		}
		if err := s.verifyOutside(ctx, op, w); err != nil {
			return err
		}
	}

	// From here the snapshot may commit with the caller's transaction, even
	// if commit fails or panics: it is in doubt unless commit returns nil.
	// (Recorded on the way out, so that a commit that succeeds does not pay
	// for the digest.)
	settled := false
	defer func() {
		if !settled {
			s.addDoubt(w.seq, w.ev.Payload)
		}
	}()
	err = commit(ctx)
	settled = err == nil
	if err != nil {
		// Recorded only if commit returned nil: a commit that failed, or
		// whose outcome is unknown (the connection died during COMMIT), is
		// a write in doubt, resolved at the next write as a lost
		// acknowledgement is (adopted when its row is there).
		s.addDoubt(w.seq, w.ev.Payload)
		settled = true
		return markInDoubt(fmt.Errorf("store: %s %q: commit of snapshot %d failed; in doubt, the next write adopts it if it committed: %w", op, s.outbox, w.seq, err))
	}
	if rr, ok := tx.(journal.ReplicationReporter); ok {
		if rerr := rr.Replicated(); rerr != nil {
			// Committed on the server, which stopped waiting for its
			// synchronous standbys: acknowledged only once confirmed.
			s.addDoubt(w.seq, w.ev.Payload)
			adopted, confirmErr := s.committedDespite(ctx, w, rerr)
			if !adopted {
				return s.notConfirmed(op, w.seq, cmp.Or(confirmErr, rerr))
			}
			s.maybePrune(ctx)
			return nil
		}
	}
	s.commit(w, false)
	s.maybePrune(ctx)
	return nil
}

// appendInTx appends w through the caller's transaction: with AppendNext
// when tx has it. A journal without it appends plainly, and the head that
// tells whether another writer is ahead cannot be read through tx, whose
// snapshot may be older than that writer's rows (REPEATABLE READ): the
// append then reports journal.ErrUnverified, and the head is read outside.
func appendInTx(ctx context.Context, tx journal.Journal, w *write) error {
	if w.kind == RowDelta {
		return tx.(journal.SuccessorAppender).AppendSuccessor(ctx, w.ev)
	}
	if next, ok := tx.(journal.NextAppender); ok {
		return next.AppendNext(ctx, w.ev)
	}
	if err := tx.Append(ctx, w.ev); err != nil {
		return err
	}
	return journal.ErrUnverified
}

// txAppendFailed handles a write through the caller's transaction that
// failed. Nothing of the transaction is committed (commit was not called),
// so nothing is in doubt: a conflict is resolved as for Save, except that
// an adopted write of this store fails the call with ErrRetryTx, because
// the caller's transaction must run again on top of it.
func (s *Store) txAppendFailed(ctx context.Context, op string, w *write, err error) error {
	if errors.Is(err, journal.ErrBaseMissing) {
		// Nothing written; the next write is a full snapshot.
		s.baseMissing(ctx, op, err)
		return fmt.Errorf("store: %s %q: snapshot %d: %w; nothing written, the next write is a full snapshot: %w", op, s.outbox, w.seq, err, errRetryAsFull)
	}
	if ahead := (*aheadError)(nil); errors.As(err, &ahead) {
		return s.fenceAhead(ctx, op, w, ahead)
	}
	if !errors.Is(err, journal.ErrSequenceConflict) && !errors.Is(err, journal.ErrRolledBack) {
		return fmt.Errorf("store: %s %q: write snapshot %d (nothing committed; roll back): %w", op, s.outbox, w.seq, err)
	}
	before := s.seq
	if _, rerr := s.resolveConflict(ctx, op, w, err); rerr != nil {
		if errors.Is(rerr, journal.ErrBaseMissing) {
			return fmt.Errorf("%w: %w", rerr, errRetryAsFull)
		}
		return rerr
	}
	if s.seq == before {
		return fmt.Errorf("store: %s %q: snapshot %d: resolved without a row (bug)", op, s.outbox, w.seq)
	}
	return fmt.Errorf("store: %s %q: snapshot %d was written by an earlier call of this store, now adopted: %w", op, s.outbox, w.seq, ErrRetryTx)
}

// verifyOutside checks, through the store's own journal, a snapshot that
// the transaction's journal appended having checked it only against the
// transaction's snapshot (journal.ErrUnverified: REPEATABLE READ or
// SERIALIZABLE, whose snapshot may predate a peer's saves and prune), or
// not at all (a journal without AppendNext). A head at or above w, which
// the transaction's own row is not part of, is another writer's, and the
// store is fenced; w's own row there is a tx that writes outside the
// caller's transaction, refused as an invalid argument. No writer can get
// above w later: its row at w.seq waits on the transaction's (and the
// stream's lock, where AppendNext took it), and a row of another writer
// that was at w.seq and is gone was pruned below a newer one, already
// committed when the head is read.
func (s *Store) verifyOutside(ctx context.Context, op string, w *write) error {
	// The transaction's own row is not part of the head read outside it:
	// a head at w.seq is already another writer's.
	h, err := journal.ReadHead(ctx, s.j, s.pid)
	if err != nil {
		s.addDoubt(w.seq, w.ev.Payload) // in case the caller commits all the same
		return fmt.Errorf("store: %s %q: snapshot %d written in the transaction, but reading the stream's head to check it failed (nothing committed; roll back): %w", op, s.outbox, w.seq, err)
	}
	if h.Highest <= w.seq-1 {
		if w.kind == RowDelta && !(h.HasLast && h.Last.SequenceNr == w.seq-1) {
			// The delta's row before is missing: the transaction must
			// not commit it; the next write is a full snapshot.
			err := &journal.BaseMissingError{PersistenceID: s.pid, SequenceNr: w.seq, Highest: h.Highest}
			s.baseMissing(ctx, op, err)
			return fmt.Errorf("store: %s %q: snapshot %d: %w; roll back, the next write is a full snapshot: %w", op, s.outbox, w.seq, err, errRetryAsFull)
		}
		return nil
	}
	ahead := &aheadError{head: h}
	if s.isOwnHead(ahead.head, w) {
		// w's own row, seen from outside before commit: tx does not write
		// in the caller's transaction. The row is durable all the same:
		// in doubt, adopted by the next write.
		s.addDoubt(w.seq, w.ev.Payload)
		return fmt.Errorf("store: %s %q: snapshot %d: %w", op, s.outbox, w.seq, &journal.InvalidArgumentError{Field: "transaction",
			Reason: "its journal wrote the snapshot outside the transaction (visible before commit, so the caller's writes and the offsets would not commit together); pass a journal bound to the caller's transaction, such as pgjournal.New(tx)"})
	}
	return s.fenceAhead(ctx, op, w, ahead)
}
