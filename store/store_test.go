package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// newJournalFunc makes an empty journal for one test.
type newJournalFunc func(t *testing.T) journal.Journal

func memoryJournal(*testing.T) journal.Journal { return journal.NewMemory() }

func postgresJournal(t *testing.T) journal.Journal { return pgjournal.New(testdb.New(t).Pool) }

func TestStoreOnMemory(t *testing.T) {
	t.Parallel()
	runSuite(t, memoryJournal)
}

func TestStoreOnPostgres(t *testing.T) {
	t.Parallel()
	runSuite(t, postgresJournal)
}

// open opens outbox on j, in the mode t runs under (see suiteModes), with
// opts after the mode's options.
func open(t *testing.T, j journal.Journal, outbox string, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), j, outbox, append(modeOf(t), opts...)...)
	if err != nil {
		t.Fatalf("Open(%q): %v", outbox, err)
	}
	return s
}

func load(t *testing.T, s *store.Store) map[string]uint64 {
	t.Helper()
	m, err := s.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func save(t *testing.T, s *store.Store, m map[string]uint64) {
	t.Helper()
	if err := s.Save(t.Context(), m); err != nil {
		t.Fatalf("Save(%v): %v", m, err)
	}
}

func wantOffsets(t *testing.T, got, want map[string]uint64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("offsets = %v, want %v", got, want)
	}
}

func highest(t *testing.T, j journal.Journal, pid string) uint64 {
	t.Helper()
	hi, err := j.HighestSequenceNr(t.Context(), pid)
	if err != nil {
		t.Fatalf("HighestSequenceNr: %v", err)
	}
	return hi
}

// rows lists the non-deleted snapshot rows of pid.
func rows(t *testing.T, j journal.Journal, pid string) []journal.Event {
	t.Helper()
	var evs []journal.Event
	for ev, err := range j.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// rowOffsets returns the offsets each of the contiguous rows evs holds: a
// full snapshot's own, a delta's applied to the row before.
func rowOffsets(t *testing.T, evs []journal.Event) []map[string]uint64 {
	t.Helper()
	var out []map[string]uint64
	for i, ev := range evs {
		r, err := store.DecodeRow(ev)
		if err != nil {
			t.Fatalf("decode row %d: %v", ev.SequenceNr, err)
		}
		if r.Kind == store.RowFull {
			out = append(out, r.Offsets)
			continue
		}
		if i == 0 || r.Base != evs[i-1].SequenceNr {
			t.Fatalf("row %d: a delta on %d, not on the row before", ev.SequenceNr, r.Base)
		}
		m := maps.Clone(out[i-1])
		maps.Copy(m, r.Offsets)
		for _, k := range r.Removed {
			delete(m, k)
		}
		out = append(out, m)
	}
	return out
}

// checkCanonical asserts that every snapshot row of pid is a strict
// encoding of its map with nothing more: patched payloads decode and are
// exactly as long as a fresh encoding. (New keys are appended to a patched
// snapshot, not sorted in, so the bytes may differ from codec.Encode's.) A
// delta row must decode, on the row before it.
func checkCanonical(t *testing.T, j journal.Journal, pid string) {
	t.Helper()
	for _, ev := range rows(t, j, pid) {
		if ev.Manifest == codec.DeltaManifest {
			d, err := codec.DecodeDelta(ev.Payload)
			if err != nil || d.Base != ev.SequenceNr-1 {
				t.Fatalf("row %d: delta on %d: %v", ev.SequenceNr, d.Base, err)
			}
			continue
		}
		m, err := codec.Decode(ev.Payload)
		if err != nil {
			t.Fatalf("row %d: %v", ev.SequenceNr, err)
		}
		if n, _ := codec.EncodedLen(m); n != len(ev.Payload) {
			t.Fatalf("row %d is %d bytes, a fresh encoding of its %d keys %d", ev.SequenceNr, len(ev.Payload), len(m), n)
		}
	}
}

// suite is the store's specification: named cases, each run in parallel
// with journals from newJournal. Every case is a func(t, newJournal), or a
// faulty one, which runs on a fault journal twice (see faulty).
var suite = []struct {
	name string
	run  func(t *testing.T, newJournal newJournalFunc)
}{
	// Offsets: what a relay saves, it loads again
	{"RestartKeepsOffsets", testRestartKeepsOffsets},
	{"SnapshotRow", testSnapshotRow},
	{"MonotonicMerge", testMonotonicMerge},
	{"NoOpSaveWritesNothing", testNoOpSaveWritesNothing},
	{"LoadReturnsCopy", testLoadReturnsCopy},
	{"OutboxesAreSeparate", testOutboxesAreSeparate},
	{"ConcurrentSavesAreSerialised", testConcurrentSavesAreSerialised},
	{"CancelledContext", testCancelledContext},

	// Operator changes
	{"RewindAndForgetSurviveRestart", testRewindAndForgetSurviveRestart},
	{"Replace", testReplace},

	// Fencing
	{"SecondWriterIsFenced", testSecondWriterIsFenced},
	{"StaleWriterFencedAfterPruning", testStaleWriterFencedAfterPruning},

	// Retention
	{"RetentionBound", testRetentionBound},
	{"OpenPrunesLeftovers", testOpenPrunesLeftovers},
	{"AllSnapshotsDeleted", testAllSnapshotsDeleted},

	// Validation and corrupt rows
	{"InvalidKeyWritesNothing", testInvalidKeyWritesNothing},
	{"InvalidName", testInvalidName},
	{"InvalidOptions", testInvalidOptions},
	{"CorruptNewestSnapshot", testCorruptNewestSnapshot},
	{"UnknownManifest", testUnknownManifest},

	// Faults of the journal (each on the AppendNext and the plain Append path)
	{"LostAckAdoptedAtOnce", faulty(testLostAckAdoptedAtOnce)},
	{"LostAckAdoptedAtNextWrite", faulty(testLostAckAdoptedAtNextWrite)},
	{"LostAckThenFailedWrite", faulty(testLostAckThenFailedWrite)},
	{"RetriedSaveAfterLostAck", faulty(testRetriedSaveAfterLostAck)},
	{"LostWriteThatNeverCommitted", faulty(testLostWriteThatNeverCommitted)},
	{"PruneFailureIsRetried", faulty(testPruneFailureIsRetried)},
	{"FailingPruneIsAmortised", faulty(testFailingPruneIsAmortised)},
	{"JournalErrorFailsOpen", faulty(testJournalErrorFailsOpen)},
}

// runSuite runs every case of suite on journals from newJournal, once
// per mode (see suiteModes).
func runSuite(t *testing.T, newJournal newJournalFunc) {
	t.Helper()
	for _, mode := range suiteModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range suite {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newJournal)
				})
			}
		})
	}
}

// faulty makes a case of one that runs on a fault journal around a fresh
// journal from newJournal: once through the fault journal itself, which
// forwards AppendNext and Head (the path production takes), and once
// through its Plain view (plain Append, for backends without them). j is
// the journal to open the store on; fj sets the faults.
func faulty(run func(t *testing.T, fj *faultjournal.Journal, j journal.Journal)) func(*testing.T, newJournalFunc) {
	return func(t *testing.T, newJournal newJournalFunc) {
		for _, path := range []struct {
			name  string
			plain bool
		}{{"AppendNext", false}, {"PlainAppend", true}} {
			t.Run(path.name, func(t *testing.T) {
				t.Parallel()
				fj := faultjournal.New(newJournal(t))
				var j journal.Journal = fj
				if path.plain {
					j = fj.Plain()
				}
				run(t, fj, j)
			})
		}
	}
}

// testRestartKeepsOffsets: a reopened store loads the offsets saved before.
func testRestartKeepsOffsets(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "orders")
	wantOffsets(t, load(t, s), map[string]uint64{})
	save(t, s, map[string]uint64{"order-1": 3, "order-2": 7})
	save(t, s, map[string]uint64{"order-3": 1})
	s2 := open(t, j, "orders")
	wantOffsets(t, load(t, s2), map[string]uint64{"order-1": 3, "order-2": 7, "order-3": 1})
	if s2.SequenceNr() != 2 {
		t.Fatalf("SequenceNr after reopen = %d, want 2", s2.SequenceNr())
	}
}

// testSnapshotRow: a save is one journal row: the codec's encoding, manifest and tag outbox-offsets, the writer id.
func testSnapshotRow(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "billing", store.WithWriterID("relay-a"))
	if got, want := s.PersistenceID(), "outbox::billing::offsets"; got != want {
		t.Fatalf("PersistenceID = %q, want %q", got, want)
	}
	save(t, s, map[string]uint64{"b": 2, "a": 1})
	evs := rows(t, j, s.PersistenceID())
	if len(evs) != 1 {
		t.Fatalf("%d rows, want 1", len(evs))
	}
	ev := evs[0]
	want, _ := codec.Encode(map[string]uint64{"a": 1, "b": 2})
	wantTags := []string{"outbox-offsets"}
	if incremental(t) { // the first row of an outbox is a full snapshot, marked as written incrementally
		wantTags = append(wantTags, store.IncrementalTag)
	}
	if ev.SequenceNr != 1 || ev.Manifest != codec.Manifest || ev.WriterUUID != "relay-a" ||
		!slices.Equal(ev.Tags, wantTags) || string(ev.Payload) != string(want) {
		t.Fatalf("row = %+v, want seq 1, manifest outbox-offsets, tags %q, writer relay-a, payload %x", ev, wantTags, want)
	}
	// The next row: a full snapshot, or in incremental mode a delta of
	// the change on row 1.
	save(t, s, map[string]uint64{"a": 3, "c": 1})
	evs = rows(t, j, s.PersistenceID())
	ev = evs[len(evs)-1]
	if !incremental(t) {
		want, _ = codec.Encode(map[string]uint64{"a": 3, "b": 2, "c": 1})
		if ev.SequenceNr != 2 || ev.Manifest != codec.Manifest || string(ev.Payload) != string(want) {
			t.Fatalf("row 2 = %+v, want the full snapshot %x", ev, want)
		}
		return
	}
	want, _ = codec.EncodeDelta(codec.Delta{Base: 1, Root: 1, Set: map[string]uint64{"a": 3, "c": 1}})
	if ev.SequenceNr != 2 || ev.Manifest != codec.DeltaManifest || ev.WriterUUID != "relay-a" ||
		!slices.Equal(ev.Tags, []string{"outbox-offsets"}) || string(ev.Payload) != string(want) {
		t.Fatalf("row 2 = %+v, want a delta row %x", ev, want)
	}
	if info := s.Info(); info.Kind != store.RowDelta || info.Mode != store.ModeIncremental || info.Chain != 1 {
		t.Fatalf("Info = %+v, want a delta, incremental, chain 1", info)
	}
}

// testMonotonicMerge: Save merges, and never lowers an offset.
func testMonotonicMerge(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "m")
	save(t, s, map[string]uint64{"a": 5, "b": 5})
	save(t, s, map[string]uint64{"a": 3, "b": 9, "c": 1})
	wantOffsets(t, load(t, s), map[string]uint64{"a": 5, "b": 9, "c": 1})
	wantOffsets(t, load(t, open(t, j, "m")), map[string]uint64{"a": 5, "b": 9, "c": 1})
}

// testNoOpSaveWritesNothing: a save, rewind or forget that changes nothing writes no row.
func testNoOpSaveWritesNothing(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "noop")
	save(t, s, map[string]uint64{"a": 5})
	save(t, s, map[string]uint64{"a": 5})
	save(t, s, map[string]uint64{"a": 4})
	save(t, s, nil)
	if err := s.Forget(t.Context(), "absent"); err != nil {
		t.Fatalf("Forget absent: %v", err)
	}
	if err := s.Rewind(t.Context(), map[string]uint64{"a": 5}); err != nil {
		t.Fatalf("Rewind to same: %v", err)
	}
	if hi := highest(t, j, s.PersistenceID()); hi != 1 {
		t.Fatalf("highest seq = %d after no-op saves, want 1", hi)
	}
}

// testLoadReturnsCopy: changing what Load returned changes nothing in the store.
func testLoadReturnsCopy(t *testing.T, newJournal newJournalFunc) {
	s := open(t, newJournal(t), "copy")
	save(t, s, map[string]uint64{"a": 1})
	m := load(t, s)
	m["a"] = 100
	m["x"] = 1
	wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
}

// testOutboxesAreSeparate: outboxes whose names share a prefix do not see each other.
func testOutboxesAreSeparate(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	a, b := open(t, j, "a"), open(t, j, "a::x")
	save(t, a, map[string]uint64{"k": 1})
	save(t, b, map[string]uint64{"k": 2})
	wantOffsets(t, load(t, open(t, j, "a")), map[string]uint64{"k": 1})
	wantOffsets(t, load(t, open(t, j, "a::x")), map[string]uint64{"k": 2})
}

// testConcurrentSavesAreSerialised: concurrent saves on one store write contiguous, monotonic snapshots.
func testConcurrentSavesAreSerialised(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "busy", store.WithRetention(1000))
	const goroutines, rounds = 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds)
	want := map[string]uint64{}
	for g := range goroutines {
		for r := range rounds {
			k := fmt.Sprintf("k%d", (g+r)%7)
			v := uint64(g*rounds + r + 1)
			want[k] = max(want[k], v)
		}
	}
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				k := fmt.Sprintf("k%d", (g+r)%7)
				if err := s.Save(t.Context(), map[string]uint64{k: uint64(g*rounds + r + 1)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Save: %v", err)
	}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, load(t, open(t, j, "busy")), want)
	evs := rows(t, j, s.PersistenceID())
	for i, ev := range evs {
		if ev.SequenceNr != uint64(i+1) {
			t.Fatalf("row %d has seq %d: sequence numbers not contiguous", i, ev.SequenceNr)
		}
	}
	if uint64(len(evs)) != s.SequenceNr() {
		t.Fatalf("%d rows, SequenceNr %d", len(evs), s.SequenceNr())
	}
	checkCanonical(t, j, s.PersistenceID())
	// Offsets never decrease from one snapshot to the next.
	prev := map[string]uint64{}
	for i, m := range rowOffsets(t, evs) {
		ev := evs[i]
		for k, v := range prev {
			if m[k] < v {
				t.Fatalf("row %d: %s went back from %d to %d", ev.SequenceNr, k, v, m[k])
			}
		}
		prev = m
	}
}

// testCancelledContext: a cancelled context fails Save and Open and changes nothing.
func testCancelledContext(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "ctx")
	save(t, s, map[string]uint64{"a": 1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Save(ctx, map[string]uint64{"a": 2}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save with cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := store.Open(ctx, j, "ctx"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with cancelled ctx = %v, want context.Canceled", err)
	}
	// Nothing moved, and the next save works.
	wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
	save(t, s, map[string]uint64{"a": 3})
	wantOffsets(t, load(t, open(t, j, "ctx")), map[string]uint64{"a": 3})
}

// testRewindAndForgetSurviveRestart: Rewind lowers, Forget drops, both durably.
func testRewindAndForgetSurviveRestart(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	ctx := t.Context()
	s := open(t, j, "ops")
	save(t, s, map[string]uint64{"a": 10, "b": 20, "c": 30})
	if err := s.Rewind(ctx, map[string]uint64{"a": 2, "d": 4}); err != nil {
		t.Fatalf("Rewind: %v", err)
	}
	if err := s.Forget(ctx, "b", "nope"); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	want := map[string]uint64{"a": 2, "c": 30, "d": 4}
	wantOffsets(t, load(t, s), want)
	checkCanonical(t, j, s.PersistenceID())
	s2 := open(t, j, "ops")
	wantOffsets(t, load(t, s2), want)
	// After a rewind, Save moves forward again from the lower value.
	save(t, s2, map[string]uint64{"a": 3})
	wantOffsets(t, load(t, s2), map[string]uint64{"a": 3, "c": 30, "d": 4})
}

// testReplace: Replace sets exactly the given offsets in one snapshot.
func testReplace(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	ctx := t.Context()
	s := open(t, j, "replace")
	save(t, s, map[string]uint64{"a": 10, "b": 20, "c": 30})
	want := map[string]uint64{"a": 1, "c": 30, "d": 4}
	if err := s.Replace(ctx, want); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if s.SequenceNr() != 2 {
		t.Fatalf("Replace wrote up to snapshot %d, want one snapshot (2)", s.SequenceNr())
	}
	if err := s.Replace(ctx, want); err != nil || s.SequenceNr() != 2 {
		t.Fatalf("same Replace again: %v, seq %d; want nothing written", err, s.SequenceNr())
	}
	wantOffsets(t, load(t, open(t, j, "replace")), want)
	checkCanonical(t, j, s.PersistenceID())
	if err := s.Replace(ctx, map[string]uint64{"bad\xff": 1}); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("Replace with an invalid key = %v, want ErrInvalidKey", err)
	}
}

// testSecondWriterIsFenced: a writer that lost the next sequence number is fenced until it reopens.
func testSecondWriterIsFenced(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	ctx := t.Context()
	a := open(t, j, "shared")
	b := open(t, j, "shared")
	save(t, a, map[string]uint64{"x": 1})
	err := b.Save(ctx, map[string]uint64{"y": 1})
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("second writer's Save = %v, want ErrFenced", err)
	}
	var fe *store.FencedError
	if !errors.As(err, &fe) || fe.Writer != a.WriterID() || fe.SequenceNr != 1 {
		t.Fatalf("fenced error = %#v, want writer %q at seq 1", fe, a.WriterID())
	}
	// Stays fenced, for every kind of write, even one that would not
	// conflict any more.
	for i, op := range []func() error{
		func() error { return b.Save(ctx, map[string]uint64{"y": 2}) },
		func() error { return b.Rewind(ctx, map[string]uint64{"x": 0}) },
		func() error { return b.Forget(ctx, "x") },
		func() error { return b.Replace(ctx, map[string]uint64{}) },
	} {
		if err := op(); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("call %d on fenced store = %v, want ErrFenced", i, err)
		}
	}
	// The fenced store's memory did not move ahead of the journal.
	wantOffsets(t, load(t, b), map[string]uint64{})
	// The first writer goes on.
	save(t, a, map[string]uint64{"x": 2})
	wantOffsets(t, load(t, open(t, j, "shared")), map[string]uint64{"x": 2})
	// Reopening clears the fence.
	b2 := open(t, j, "shared")
	save(t, b2, map[string]uint64{"y": 1})
	if err := a.Save(ctx, map[string]uint64{"x": 3}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("old writer after takeover = %v, want ErrFenced", err)
	}
}

// testStaleWriterFencedAfterPruning: a stale writer stays fenced after the rows it would collide with were pruned.
func testStaleWriterFencedAfterPruning(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	ctx := t.Context()
	old := open(t, j, "zombie", store.WithRetention(2), store.WithPruneInterval(1))
	save(t, old, map[string]uint64{"a": 1}) // seq 1
	live := open(t, j, "zombie", store.WithRetention(2), store.WithPruneInterval(1))
	for i := range 20 {
		save(t, live, map[string]uint64{"a": uint64(i + 2)}) // seqs 2..21, pruned to 20..21
	}
	if n := len(rows(t, j, old.PersistenceID())); n != 2 {
		t.Fatalf("%d rows after pruning, want 2", n)
	}
	// The stale writer's next number (2) is free again: it must still
	// be refused, and stay refused.
	for range 2 {
		if err := old.Save(ctx, map[string]uint64{"b": 1}); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("stale writer's Save after pruning = %v, want ErrFenced", err)
		}
	}
	if n := len(rows(t, j, old.PersistenceID())); n != 2 {
		t.Fatalf("%d rows after the stale save, want 2: it wrote into the gap", n)
	}
	save(t, live, map[string]uint64{"a": 100})
	wantOffsets(t, load(t, open(t, j, "zombie")), map[string]uint64{"a": 100})
}

// testRetentionBound: an outbox keeps at most retention + prune interval rows however long it runs.
func testRetentionBound(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	const keep, every, saves = 3, 5, 1000
	s := open(t, j, "long", store.WithRetention(keep), store.WithPruneInterval(every))
	for i := range saves {
		save(t, s, map[string]uint64{"k": uint64(i + 1)})
		if n := len(rows(t, j, s.PersistenceID())); n > keep+every {
			t.Fatalf("after %d saves: %d rows, bound is %d", i+1, n, keep+every)
		}
	}
	if hi := highest(t, j, s.PersistenceID()); hi != saves {
		t.Fatalf("highest seq = %d, want %d", hi, saves)
	}
	evs := rows(t, j, s.PersistenceID())
	if evs[len(evs)-1].SequenceNr != saves || len(evs) < keep {
		t.Fatalf("kept rows end at %d (%d rows), want the newest %d at least", evs[len(evs)-1].SequenceNr, len(evs), keep)
	}
	wantOffsets(t, load(t, open(t, j, "long")), map[string]uint64{"k": saves})
	if st := s.Stats(); st.Writes != saves || st.Prunes == 0 || st.PruneErrors != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// testOpenPrunesLeftovers: a store with a smaller retention prunes older stores' rows at its first save.
func testOpenPrunesLeftovers(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "left", store.WithRetention(100))
	for i := range 20 {
		save(t, s, map[string]uint64{"k": uint64(i + 1)})
	}
	s2 := open(t, j, "left", store.WithRetention(2))
	save(t, s2, map[string]uint64{"k": 21})
	if n := len(rows(t, j, s.PersistenceID())); n != 2 {
		t.Fatalf("%d rows after the first save with retention 2, want 2", n)
	}
}

// testAllSnapshotsDeleted: after a journal-level wipe, Open starts empty above the deleted rows.
func testAllSnapshotsDeleted(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	s := open(t, j, "wiped")
	save(t, s, map[string]uint64{"a": 1})
	save(t, s, map[string]uint64{"a": 2})
	if err := j.DeleteTo(t.Context(), s.PersistenceID(), math.MaxUint64); err != nil {
		t.Fatalf("DeleteTo: %v", err)
	}
	s2 := open(t, j, "wiped")
	wantOffsets(t, load(t, s2), map[string]uint64{})
	save(t, s2, map[string]uint64{"b": 1})
	if s2.SequenceNr() != 3 {
		t.Fatalf("seq after wipe = %d, want 3", s2.SequenceNr())
	}
}

// testInvalidKeyWritesNothing: a bad key fails the whole write with ErrInvalidKey.
func testInvalidKeyWritesNothing(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	ctx := t.Context()
	s := open(t, j, "keys")
	save(t, s, map[string]uint64{"ok": 1})
	for _, bad := range []string{"", "bad\xff", "nul\x00", strings.Repeat("k", store.MaxKeyLen+1)} {
		for name, op := range map[string]func() error{
			"Save":   func() error { return s.Save(ctx, map[string]uint64{"fine": 9, bad: 1}) },
			"Rewind": func() error { return s.Rewind(ctx, map[string]uint64{"fine": 9, bad: 1}) },
			"Forget": func() error { return s.Forget(ctx, "ok", bad) },
		} {
			if err := op(); !errors.Is(err, store.ErrInvalidKey) {
				t.Fatalf("%s with key %q = %v, want ErrInvalidKey", name, bad, err)
			}
		}
	}
	if hi := highest(t, j, s.PersistenceID()); hi != 1 {
		t.Fatalf("highest seq = %d after rejected writes, want 1", hi)
	}
	wantOffsets(t, load(t, s), map[string]uint64{"ok": 1})
}

// testInvalidName: a bad outbox name fails Open with ErrInvalidName; SQL-like names are names.
func testInvalidName(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	for _, name := range []string{"", "a\x00b", "\xc3\x28", strings.Repeat("n", store.MaxNameLen+1)} {
		if _, err := store.Open(t.Context(), j, name); !errors.Is(err, store.ErrInvalidName) {
			t.Fatalf("Open(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	// Names that look like SQL are just names.
	s := open(t, j, `x'; DROP TABLE journal; --`)
	save(t, s, map[string]uint64{"a": 1})
	wantOffsets(t, load(t, open(t, j, `x'; DROP TABLE journal; --`)), map[string]uint64{"a": 1})
}

// testInvalidOptions: bad options fail Open with ErrInvalidOption, a nil
// journal with journal.ErrInvalidArgument.
func testInvalidOptions(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	for i, opt := range []store.Option{store.WithRetention(0), store.WithPruneInterval(0), store.WithWriterID("a\x00")} {
		if _, err := store.Open(t.Context(), j, "o", opt); !errors.Is(err, store.ErrInvalidOption) {
			t.Fatalf("option %d: Open = %v, want ErrInvalidOption", i, err)
		}
	}
	// A nil journal is an invalid argument, not an option (issue 16).
	if _, err := store.Open(t.Context(), nil, "o"); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("nil journal: Open = %v, want journal.ErrInvalidArgument", err)
	}
}

// testCorruptNewestSnapshot: an undecodable newest snapshot fails Open, never starts empty.
func testCorruptNewestSnapshot(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	ctx := t.Context()
	s := open(t, j, "corrupt")
	save(t, s, map[string]uint64{"a": 1})
	// A hand-written row: count 2, but only one entry follows.
	bad := []byte{2, 0, 0, 0, 1, 0, 0, 0, 'a', 1, 0, 0, 0, 0, 0, 0, 0}
	if err := j.Append(ctx, journal.Event{PersistenceID: s.PersistenceID(), SequenceNr: 2, Payload: bad, Manifest: codec.Manifest}); err != nil {
		t.Fatalf("Append corrupt row: %v", err)
	}
	_, err := store.Open(ctx, j, "corrupt")
	if !errors.Is(err, store.ErrCorruptSnapshot) || !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("Open on corrupt snapshot = %v, want ErrCorruptSnapshot wrapping codec.ErrCorrupt", err)
	}
	var ce *store.CorruptSnapshotError
	if !errors.As(err, &ce) || ce.SequenceNr != 2 || ce.PersistenceID != s.PersistenceID() {
		t.Fatalf("error %v does not name seq 2 of %q", err, s.PersistenceID())
	}
	if !strings.Contains(err.Error(), "outbox::corrupt::offsets") {
		t.Fatalf("error %q does not name the persistence id", err)
	}
	// The old store is fenced by the foreign row rather than overwriting.
	if err := s.Save(ctx, map[string]uint64{"a": 2}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Save over a foreign row = %v, want ErrFenced", err)
	}
}

// testUnknownManifest: a snapshot of an unknown format fails Open, naming the manifest.
func testUnknownManifest(t *testing.T, newJournal newJournalFunc) {
	j := newJournal(t)
	ctx := t.Context()
	pid := store.PersistenceID("future")
	payload, _ := codec.Encode(map[string]uint64{"a": 1})
	if err := j.Append(ctx, journal.Event{PersistenceID: pid, SequenceNr: 1, Payload: payload, Manifest: "outbox-offsets-v9"}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if _, err := store.Open(ctx, j, "future"); !errors.Is(err, store.ErrCorruptSnapshot) || !strings.Contains(err.Error(), "outbox-offsets-v9") {
		t.Fatalf("Open = %v, want ErrCorruptSnapshot naming the manifest", err)
	}
}

// testLostAckAdoptedAtOnce: a write that committed but reported an error is read back and adopted at once.
func testLostAckAdoptedAtOnce(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	s := open(t, j, "ack")
	save(t, s, map[string]uint64{"a": 1})
	fj.FailAfterCommit.Store(1)
	// The append commits and reports an error; the store reads the row
	// back at once, finds its own write and returns nil.
	save(t, s, map[string]uint64{"a": 2})
	wantOffsets(t, load(t, s), map[string]uint64{"a": 2})
	if st := s.Stats(); st.Adopted != 1 {
		t.Fatalf("Adopted = %d, want 1", st.Adopted)
	}
}

// testLostAckAdoptedAtNextWrite: when the read-back fails too, the next write adopts it.
func testLostAckAdoptedAtNextWrite(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	s := open(t, j, "ack2")
	save(t, s, map[string]uint64{"a": 1})
	fj.FailAfterCommit.Store(1)
	fj.FailLast.Store(1) // the read-back fails too
	if err := s.Save(t.Context(), map[string]uint64{"a": 2}); err == nil {
		t.Fatal("Save with a lost acknowledgement and a failed read-back returned nil")
	}
	// Memory never gets ahead of what is known durable.
	wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
	// The next save conflicts with the committed row, recognises it as
	// its own, adopts it and writes on top: no ErrFenced, nothing lost.
	save(t, s, map[string]uint64{"b": 1})
	want := map[string]uint64{"a": 2, "b": 1}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, load(t, open(t, fj.Inner(), "ack2")), want)
	if s.SequenceNr() != 3 {
		t.Fatalf("SequenceNr = %d, want 3", s.SequenceNr())
	}
}

// testLostAckThenFailedWrite: a lost acknowledgement followed by a failed write is still adopted.
func testLostAckThenFailedWrite(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	ctx := t.Context()
	s := open(t, j, "doubt")
	save(t, s, map[string]uint64{"a": 1})
	fj.FailAfterCommit.Store(1)
	fj.FailLast.Store(1)
	if err := s.Save(ctx, map[string]uint64{"a": 2}); err == nil { // committed, reply lost
		t.Fatal("Save returned nil")
	}
	fj.FailBeforeCommit.Store(1)
	if err := s.Save(ctx, map[string]uint64{"b": 1}); err == nil { // never reached the journal
		t.Fatal("Save returned nil")
	}
	// The row at seq 2 is the first write in doubt, not the last one:
	// still this store's own, adopted, not fenced.
	save(t, s, map[string]uint64{"c": 1})
	want := map[string]uint64{"a": 2, "c": 1}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, load(t, open(t, fj.Inner(), "doubt")), want)
}

// testRetriedSaveAfterLostAck: the caller's retry of a save whose acknowledgement was lost adopts the row.
func testRetriedSaveAfterLostAck(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	s := open(t, j, "ack3")
	fj.FailAfterCommit.Store(1)
	fj.FailLast.Store(1)
	if err := s.Save(t.Context(), map[string]uint64{"a": 2}); err == nil {
		t.Fatal("Save returned nil")
	}
	// The caller retries the same save: its payload is the row's.
	save(t, s, map[string]uint64{"a": 2})
	if s.SequenceNr() != 1 {
		t.Fatalf("SequenceNr = %d, want 1 (the retry adopted the row)", s.SequenceNr())
	}
}

// testLostWriteThatNeverCommitted: a write that failed before commit leaves nothing behind.
func testLostWriteThatNeverCommitted(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	s := open(t, j, "lost")
	fj.FailBeforeCommit.Store(1)
	if err := s.Save(t.Context(), map[string]uint64{"a": 1}); err == nil {
		t.Fatal("Save returned nil for a write that never happened")
	}
	wantOffsets(t, load(t, s), map[string]uint64{})
	save(t, s, map[string]uint64{"b": 1})
	wantOffsets(t, load(t, open(t, fj.Inner(), "lost")), map[string]uint64{"b": 1})
}

// testPruneFailureIsRetried: a failed prune fails no save and is retried.
func testPruneFailureIsRetried(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	s := open(t, j, "prune", store.WithRetention(1), store.WithPruneInterval(1))
	fj.FailDeleteTo.Store(1)
	// The first prune fails (at save 2 in full mode; in incremental mode at
	// the first full snapshot above a chain), the save succeeds.
	for i := uint64(1); s.Stats().PruneErrors == 0; i++ {
		if i > 10 {
			t.Fatalf("no prune attempted in %d saves", i-1)
		}
		save(t, s, map[string]uint64{"a": i})
	}
	if st := s.Stats(); st.PruneErrors != 1 || st.Prunes != 0 {
		t.Fatalf("stats = %+v, want one failed prune", st)
	}
	save(t, s, map[string]uint64{"a": 100})
	// Left: the newest row, and in incremental mode the chain it is on.
	want := 1 + s.Info().Chain
	if n := len(rows(t, fj.Inner(), s.PersistenceID())); n != want {
		t.Fatalf("%d rows after the retried prune, want %d", n, want)
	}
}

// testFailingPruneIsAmortised: a prune that always fails is tried once per interval, not per save.
func testFailingPruneIsAmortised(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	const failures, saves, every = 1000, 100, 16
	fj.FailDeleteTo.Store(failures) // say, a role without DELETE
	s := open(t, j, "noprune", store.WithRetention(2), store.WithPruneInterval(every))
	for i := range saves {
		save(t, s, map[string]uint64{"a": uint64(i + 1)})
	}
	calls := failures - int(fj.FailDeleteTo.Load())
	if max := saves/every + 2; calls > max || calls == 0 {
		t.Fatalf("%d DeleteTo calls in %d saves with interval %d, want 1..%d", calls, saves, every, max)
	}
	if st := s.Stats(); st.PruneErrors != int64(calls) || st.Writes != saves {
		t.Fatalf("stats = %+v after %d failed prunes", st, calls)
	}
}

// testJournalErrorFailsOpen: a journal error fails Open.
func testJournalErrorFailsOpen(t *testing.T, fj *faultjournal.Journal, j journal.Journal) {
	fj.FailLast.Store(1)
	fj.FailReplay.Store(1) // the plain path reads the chain by Replay
	if _, err := store.Open(t.Context(), j, "down"); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("Open with a failing journal = %v, want the journal's error", err)
	}
}
