package store

import (
	"errors"
	"fmt"
	"strings"
)

// ErrFenced is matched (with errors.Is) by the error of every Save, Rewind
// and Forget on a store that found another writer's snapshot where its own
// next one belonged. Another process owns the outbox; this store stays
// fenced until the outbox is opened again.
var ErrFenced = errors.New("store: fenced: another writer owns the outbox")

// ErrInvalidName is matched by the error of Open for an outbox name that is
// empty, not valid UTF-8, contains a NUL byte or is longer than MaxNameLen.
var ErrInvalidName = errors.New("store: invalid outbox name")

// ErrInvalidKey is matched by the error of Save, Rewind and Forget for a key
// that is empty, not valid UTF-8, contains a NUL byte or is longer than
// MaxKeyLen. Nothing is written.
var ErrInvalidKey = errors.New("store: invalid offset key")

// ErrInvalidOption is matched by the error of Open for an option out of
// range.
var ErrInvalidOption = errors.New("store: invalid option")

// ErrCorruptSnapshot is matched by the error of Open when the newest
// snapshot cannot be decoded or has a manifest this version does not know.
// The store never falls back to empty offsets: that would re-publish
// everything.
var ErrCorruptSnapshot = errors.New("store: corrupt snapshot")

// ErrSequenceOverflow is matched by the error of a write when the outbox's
// next snapshot would need a sequence number above math.MaxInt64. Nothing
// is written.
var ErrSequenceOverflow = errors.New("store: sequence number overflow")

// ErrInDoubt is matched by the error of a write whose outcome is unknown:
// its snapshot may have committed (a COMMIT whose reply was lost with its
// connection, a SaveTx whose commit returned an error), or did commit on
// the primary but is not confirmed on its synchronous standbys (see the
// package documentation, Failover). Load does not show
// it. The next write of the store settles it, adopting the snapshot when
// its row is there, so running the same work again from Load is safe: a
// SaveTx whose earlier transaction did commit fails with ErrRetryTx,
// before its commit, and a Save builds on top of the adopted snapshot.
// When another goroutine's write of the store settled it first, Load
// already shows it: a SaveTx of offsets it covers changes nothing and
// commits the caller's writes, so run again only what lies above Load.
var ErrInDoubt = errors.New("store: write in doubt")

// ErrOpenedSnapshotLost is matched by the error of the first write after
// Open when the server no longer has the snapshot Open loaded: it was
// committed on a primary that failed over before its standby had it (a
// commit whose wait for the standby was cancelled). Nothing is written;
// open the outbox again, which loads what the server has. The reference
// relay opens the store again with each leadership, so a failover, which
// ends the leadership, does it.
var ErrOpenedSnapshotLost = errors.New("store: the snapshot loaded at open is gone from the server; open the outbox again")

// markInDoubt marks err, the error of a write whose outcome is unknown, as
// matching ErrInDoubt.
func markInDoubt(err error) error { return &inDoubtError{err} }

type inDoubtError struct{ err error }

func (e *inDoubtError) Error() string        { return e.err.Error() }
func (e *inDoubtError) Unwrap() error        { return e.err }
func (e *inDoubtError) Is(target error) bool { return target == ErrInDoubt }

// FencedError is the error behind ErrFenced.
type FencedError struct {
	// Outbox is the outbox name.
	Outbox string
	// SequenceNr is the sequence number of the newer snapshot found: the
	// one this store tried to write, or, when that one was already
	// pruned, the newest live one.
	SequenceNr uint64
	// Writer is the writer id on that snapshot. It is empty only when no
	// newer row could be read at all.
	Writer string
}

// ByOperator reports whether the newer snapshot was written by an
// operator's tool (a writer id made by OperatorWriterID, such as the
// offsetstore CLI's) rather than by another relay.
func (e *FencedError) ByOperator() bool { return IsOperatorWriter(e.Writer) }

func (e *FencedError) Error() string {
	switch {
	case e.Writer == "":
		return fmt.Sprintf("store: outbox %q fenced: snapshot %d was written by another writer; "+
			"stop publishing, and reopen the outbox only once this relay holds its leadership", e.Outbox, e.SequenceNr)
	case e.ByOperator():
		return fmt.Sprintf("store: outbox %q fenced: snapshot %d was written by an operator (writer %q); "+
			"reopen the outbox to load the operator's change and continue from it", e.Outbox, e.SequenceNr, e.Writer)
	}
	return fmt.Sprintf("store: outbox %q fenced: snapshot %d was written by another relay (writer %q); "+
		"stop publishing: that relay owns the outbox now. Run one relay per outbox (package leader) "+
		"and reopen only after taking the leadership", e.Outbox, e.SequenceNr, e.Writer)
}

// Is reports whether target is ErrFenced.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// CorruptSnapshotError is the error behind ErrCorruptSnapshot. It names the
// row and wraps the codec's error (errors.Is(err, codec.ErrCorrupt) holds
// for an undecodable payload).
type CorruptSnapshotError struct {
	PersistenceID string
	SequenceNr    uint64
	Manifest      string
	Err           error
}

func (e *CorruptSnapshotError) Error() string {
	return fmt.Sprintf("store: snapshot %d of %q (manifest %q) cannot be read: %v", e.SequenceNr, e.PersistenceID, e.Manifest, e.Err)
}

// Is reports whether target is ErrCorruptSnapshot.
func (e *CorruptSnapshotError) Is(target error) bool { return target == ErrCorruptSnapshot }

// Unwrap returns the decoding error.
func (e *CorruptSnapshotError) Unwrap() error { return e.Err }

// errUnknownManifest is wrapped by CorruptSnapshotError for a manifest other
// than codec.Manifest.
var errUnknownManifest = errors.New("unknown manifest")

type invalidError struct {
	kind   error
	what   string
	value  string
	reason string
	// cause, when set, is matched too: the codec's error for the same
	// refusal.
	cause error
	// op and outbox, when set, name the call that refused the input.
	op, outbox string
}

func (e *invalidError) Error() string {
	bare := fmt.Sprintf("%s: %s %s %s", strings.TrimPrefix(e.kind.Error(), "store: "), e.what, quoteShort(e.value), e.reason)
	if e.op != "" {
		return fmt.Sprintf("store: %s %q: %s", e.op, e.outbox, bare)
	}
	return "store: " + bare
}

// wrapOp wraps err, an error of the call op on outbox, as
// "store: <op> <outbox>: …", without repeating the "store:" of an
// invalid-input error.
func wrapOp(op, outbox string, err error) error {
	if ie, ok := err.(*invalidError); ok {
		c := *ie
		c.op, c.outbox = op, outbox
		return &c
	}
	return fmt.Errorf("store: %s %q: %w", op, outbox, err)
}

func (e *invalidError) Is(target error) bool {
	return target == e.kind || (e.cause != nil && target == e.cause)
}

// quoteShort quotes s for an error message, cut to a readable length.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q… (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}
