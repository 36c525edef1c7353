package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
)

const (
	// MaxNameLen bounds an outbox name in bytes. The persistence id
	// outbox::<name>::offsets must fit a B-tree index entry of the journal.
	MaxNameLen = 1000
	// MaxKeyLen bounds an offset key in bytes. Keys are persistence ids of
	// the source journal, which cannot be longer than an index entry either.
	MaxKeyLen = journal.MaxPersistenceIDLen

	// Tag is the tag on every snapshot row.
	Tag = codec.Manifest
)

// PersistenceID returns the journal persistence id under which the
// snapshots of outbox are kept: outbox::<outbox>::offsets.
func PersistenceID(outbox string) string { return PersistenceIDPrefix + outbox + "::offsets" }

// PersistenceIDPrefix starts the persistence id of every outbox's
// snapshots: no source stream should start with it. Pass it to
// journal.ListOptions to list the source streams alone.
const PersistenceIDPrefix = "outbox::"

// Store keeps the offsets of one outbox: a map from source persistence id
// to the last published sequence number. Every change is written as one
// snapshot row of the journal. A Store is safe for concurrent use; writes
// are serialised.
type Store struct {
	j    journal.Journal
	next journal.NextAppender // j, when it can append conditionally; else nil
	// succ is j when it can append a row on the condition that it follows
	// the newest (journal.SuccessorAppender), else nil: deltas are written
	// only through it, so that a delta never lands on a row the journal
	// no longer has.
	succ   journal.SuccessorAppender
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
	// forceFull makes the next row a full snapshot: the journal was found
	// to lack the row a delta would build on.
	forceFull bool
	// openConfirmed: what Open loaded is known to be on the synchronous
	// standbys of the server writes go to (see confirmOpened).
	openConfirmed bool
	// opened is the newest row Open loaded (SequenceNr 0 for none), until
	// confirmOpened has compared it with the server's: a row at the same
	// number may be another writer's, written after the one loaded was
	// lost. Its payload is the loaded row's (a full snapshot's is kept as
	// the state's template anyway).
	opened journal.Event

	// mu guards what readers see; only writers holding sem change it.
	mu  sync.RWMutex
	st  state  // the offsets as durably written at seq (see state)
	seq uint64 // the newest snapshot row's sequence number, 0 for none

	fenced *FencedError
	stats  Stats
	info   Info // of the newest row, but SequenceNr, Keys and Chain (seq, st)
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
	// Compactions is, in incremental mode, the number of full snapshots
	// written (the first of an outbox included).
	Compactions int64
}

// Open opens the store of outbox on j and loads its newest snapshot. A
// journal error, or a newest snapshot that cannot be decoded, fails Open:
// it never falls back to empty offsets.
func Open(ctx context.Context, j journal.Journal, outbox string, opts ...Option) (*Store, error) {
	if j == nil {
		return nil, fmt.Errorf("store: open %q: %w", outbox, &journal.InvalidArgumentError{Field: "journal", Reason: "is nil"})
	}
	if err := ValidateName(outbox); err != nil {
		return nil, err
	}
	cfg := config{keep: DefaultRetention, pruneEvery: DefaultPruneInterval, logger: discard,
		ratio: DefaultCompactionRatio, maxDeltas: DefaultMaxDeltas}
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
	succ, _ := j.(journal.SuccessorAppender)
	s := &Store{
		j:      j,
		next:   next,
		succ:   succ,
		outbox: outbox,
		pid:    PersistenceID(outbox),
		cfg:    cfg,
		sem:    make(chan struct{}, 1),

		pruneFirst: true,
	}
	// The newest full snapshot, the deltas above it and the highest
	// sequence number, read together: a peer's first snapshot committed
	// between two separate reads must not leave this store at the peer's
	// number with empty offsets. The store continues above the highest row
	// ever written, deleted ones included, or its first save would look
	// fenced.
	c, err := journal.ReadChain(ctx, j, s.pid, codec.Manifest)
	if err != nil {
		return nil, fmt.Errorf("store: open %q: read newest snapshot: %w", outbox, err)
	}
	if err := s.loadChain(c); err != nil {
		return nil, fmt.Errorf("store: open %q: %w", outbox, err)
	}
	return s, nil
}

// DecodeSnapshot decodes ev as a full snapshot row: a manifest other than
// codec.Manifest (a delta row included), or a payload codec.Decode
// refuses, is a *CorruptSnapshotError matching ErrCorruptSnapshot. An
// outbox's current offsets are those Open loads, which may be a full
// snapshot and deltas; tools read them with Open and Load, and single rows
// of either kind with DecodeRow.
func DecodeSnapshot(ev journal.Event) (map[string]uint64, error) {
	if ev.Manifest != codec.Manifest {
		return nil, &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: errUnknownManifest}
	}
	m, err := codec.Decode(ev.Payload)
	if err != nil {
		return nil, &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: err}
	}
	return m, nil
}

// Row is one snapshot row decoded (see DecodeRow).
type Row struct {
	// Kind is the row's kind.
	Kind RowKind
	// Offsets are, for a full snapshot, the offsets; for a delta, the keys
	// it sets.
	Offsets map[string]uint64
	// Removed are the keys a delta removes.
	Removed []string
	// Base and Root are a delta's: the row it applies to, and the full
	// snapshot its chain starts from.
	Base, Root uint64
}

// DecodeRow decodes ev, a full snapshot or a delta row, for tools that
// show rows one by one (history). An unknown manifest or a payload the
// codec refuses is a *CorruptSnapshotError matching ErrCorruptSnapshot.
func DecodeRow(ev journal.Event) (Row, error) {
	if ev.Manifest != codec.DeltaManifest {
		m, err := DecodeSnapshot(ev)
		return Row{Kind: RowFull, Offsets: m}, err
	}
	d, err := codec.DecodeDelta(ev.Payload)
	if err != nil {
		return Row{}, &CorruptSnapshotError{PersistenceID: ev.PersistenceID, SequenceNr: ev.SequenceNr, Manifest: ev.Manifest, Err: err}
	}
	return Row{Kind: RowDelta, Offsets: d.Set, Removed: d.Removed, Base: d.Base, Root: d.Root}, nil
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

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var discard = slog.New(slog.DiscardHandler)
