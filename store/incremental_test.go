package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// incrementalCases run on memory and PostgreSQL.
var incrementalCases = []struct {
	name string
	run  func(t *testing.T, j journal.Journal)
}{
	{"CompactionBound", testCompactionBound},
	{"MaxDeltas", testMaxDeltas},
	{"EveryKeyMovesWritesFull", testEveryKeyMovesWritesFull},
	{"ForgetAndRewindInDeltas", testForgetAndRewindInDeltas},
	{"ModesOpenEachOther", testModesOpenEachOther},
	{"RetentionKeepsChain", testRetentionKeepsChain},
	{"BrokenChainFailsOpen", testBrokenChainFailsOpen},
	{"FullReadersRefuseDeltas", testFullReadersRefuseDeltas},
	{"CompactionCrashPoints", testCompactionCrashPoints},
	{"SaveTxWritesDelta", testSaveTxWritesDelta},
	{"CommitterSavesDeltas", testCommitterSavesDeltas},
	{"SaveTxNotDurableThenDelta", testSaveTxNotDurableThenDelta},
	{"WholeMapOneKeyMovesWritesDelta", testWholeMapOneKeyMoves},
	{"AdoptedCompactionCounted", testAdoptedCompactionCounted},
}

func TestIncrementalOnMemory(t *testing.T) {
	t.Parallel()
	runIncremental(t, memoryJournal)
}

func TestIncrementalOnPostgres(t *testing.T) {
	t.Parallel()
	runIncremental(t, postgresJournal)
}

func runIncremental(t *testing.T, newJournal newJournalFunc) {
	for _, tc := range incrementalCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newJournal(t))
		})
	}
}

// kinds returns the kinds of the live rows of pid, oldest first: "F" for
// a full snapshot, "d" for a delta.
func kinds(t *testing.T, j journal.Journal, pid string) string {
	t.Helper()
	var b []byte
	for _, ev := range rows(t, j, pid) {
		switch ev.Manifest {
		case codec.Manifest:
			b = append(b, 'F')
		case codec.DeltaManifest:
			b = append(b, 'd')
		default:
			b = append(b, '?')
		}
	}
	return string(b)
}

func manyKeys(n int, value uint64) map[string]uint64 {
	m := make(map[string]uint64, n)
	for i := range n {
		m[fmt.Sprintf("stream-%05d", i)] = value
	}
	return m
}

// A delta is written while the deltas above the full snapshot stay within
// the ratio of its size; the save that would pass it writes a full one.
func testCompactionBound(t *testing.T, j journal.Journal) {
	s := open(t, j, "bound", store.WithIncremental(), store.WithCompactionRatio(0.5), store.WithoutPruning())
	save(t, s, manyKeys(100, 1)) // the first row of an outbox: full
	full := rows(t, j, s.PersistenceID())[0]
	want := manyKeys(100, 1)
	for i := range 40 {
		k := fmt.Sprintf("stream-%05d", i)
		save(t, s, map[string]uint64{k: 2})
		want[k] = 2
	}
	evs := rows(t, j, s.PersistenceID())
	deltaBytes, fulls := 0, 0
	for _, ev := range evs[1:] {
		if ev.Manifest == codec.Manifest {
			fulls++
			if float64(deltaBytes+codec.DeltaLen(nil, nil)+len("stream-00000")+12) <= 0.5*float64(len(full.Payload)) {
				t.Fatalf("row %d is a full snapshot with %d bytes of deltas above a %d-byte one", ev.SequenceNr, deltaBytes, len(full.Payload))
			}
			full, deltaBytes = ev, 0
			continue
		}
		deltaBytes += len(ev.Payload)
		if float64(deltaBytes) > 0.5*float64(len(full.Payload)) {
			t.Fatalf("row %d: %d bytes of deltas above a %d-byte snapshot, past the ratio", ev.SequenceNr, deltaBytes, len(full.Payload))
		}
	}
	if fulls == 0 {
		t.Fatalf("no compaction in 40 saves: rows %s", kinds(t, j, s.PersistenceID()))
	}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, load(t, open(t, j, "bound")), want)
	checkCanonical(t, j, s.PersistenceID())
}

// After WithMaxDeltas deltas the next save writes a full snapshot.
func testMaxDeltas(t *testing.T, j journal.Journal) {
	s := open(t, j, "max", store.WithIncremental(), store.WithMaxDeltas(2), store.WithCompactionRatio(1e9), store.WithoutPruning())
	for i := range uint64(7) {
		save(t, s, map[string]uint64{"a": i + 1})
	}
	if got, want := kinds(t, j, s.PersistenceID()), "FddFddF"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	if info := open(t, j, "max").Info(); info.Chain != 0 || info.Kind != store.RowFull || info.Mode != store.ModeIncremental || info.SequenceNr != 7 {
		t.Fatalf("Info after reopen = %+v", info)
	}
}

// A change of every key writes a full snapshot: a delta would be as
// large.
func testEveryKeyMovesWritesFull(t *testing.T, j journal.Journal) {
	s := open(t, j, "all", store.WithIncremental(), store.WithoutPruning())
	save(t, s, manyKeys(50, 1))
	save(t, s, manyKeys(50, 2))
	save(t, s, map[string]uint64{"stream-00001": 3})
	save(t, s, manyKeys(50, 4))
	if got, want := kinds(t, j, s.PersistenceID()), "FFdF"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	wantOffsets(t, load(t, open(t, j, "all")), manyKeys(50, 4))
}

// Forget and Rewind are deltas too: a removed key, a lowered value.
func testForgetAndRewindInDeltas(t *testing.T, j journal.Journal) {
	ctx := t.Context()
	s := open(t, j, "ops", store.WithIncremental(), store.WithCompactionRatio(1e9), store.WithoutPruning())
	save(t, s, map[string]uint64{"a": 5, "b": 5, "c": 5})
	if err := s.Forget(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rewind(ctx, map[string]uint64{"a": 1}); err != nil {
		t.Fatal(err)
	}
	save(t, s, map[string]uint64{"b": 2, "c": 4}) // b is new again; c does not go back
	if got, want := kinds(t, j, s.PersistenceID()), "Fddd"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	want := map[string]uint64{"a": 1, "b": 2, "c": 5}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, load(t, open(t, j, "ops")), want)
	forget := rows(t, j, s.PersistenceID())[1]
	d, err := codec.DecodeDelta(forget.Payload)
	if err != nil || len(d.Set) != 0 || len(d.Removed) != 1 || d.Removed[0] != "b" {
		t.Fatalf("the Forget's delta = %+v, %v", d, err)
	}
	// Replace always writes a full snapshot.
	if err := s.Replace(ctx, map[string]uint64{"z": 9}); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(t, j, s.PersistenceID()), "FdddF"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	wantOffsets(t, load(t, open(t, j, "ops")), map[string]uint64{"z": 9})
}

// Either mode opens an outbox written in the other and goes on in its
// own.
func testModesOpenEachOther(t *testing.T, j journal.Journal) {
	inc := open(t, j, "mix", store.WithIncremental(), store.WithCompactionRatio(1e9), store.WithoutPruning())
	save(t, inc, map[string]uint64{"a": 1, "b": 1})
	save(t, inc, map[string]uint64{"a": 2})
	full := open(t, j, "mix", store.WithoutPruning())
	wantOffsets(t, load(t, full), map[string]uint64{"a": 2, "b": 1})
	if info := full.Info(); info.Mode != store.ModeIncremental || info.Kind != store.RowDelta || info.Chain != 1 {
		t.Fatalf("Info of an incremental outbox opened in full mode = %+v", info)
	}
	save(t, full, map[string]uint64{"c": 1})
	if info := full.Info(); info.Mode != store.ModeFull || info.Kind != store.RowFull || info.Chain != 0 {
		t.Fatalf("Info after a full-mode save = %+v", info)
	}
	inc2 := open(t, j, "mix", store.WithIncremental(), store.WithCompactionRatio(1e9), store.WithoutPruning())
	save(t, inc2, map[string]uint64{"b": 5})
	if got, want := kinds(t, j, inc.PersistenceID()), "FdFd"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	want := map[string]uint64{"a": 2, "b": 5, "c": 1}
	wantOffsets(t, load(t, inc2), want)
	wantOffsets(t, load(t, open(t, j, "mix")), want)
}

// Pruning keeps the chain Open reads, whatever the retention.
func testRetentionKeepsChain(t *testing.T, j journal.Journal) {
	s := open(t, j, "keep", store.WithIncremental(), store.WithCompactionRatio(1e9), store.WithMaxDeltas(6),
		store.WithRetention(1), store.WithPruneInterval(1))
	want := map[string]uint64{}
	for i := range 20 {
		k := fmt.Sprintf("k%d", i%5)
		save(t, s, map[string]uint64{k: uint64(i + 1)})
		want[k] = uint64(i + 1)
		evs := rows(t, j, s.PersistenceID())
		if evs[0].Manifest != codec.Manifest {
			t.Fatalf("after save %d the oldest row is %d, not a full snapshot: the chain was cut", i+1, evs[0].SequenceNr)
		}
		if n := len(evs); n != 1+s.Info().Chain {
			t.Fatalf("after save %d: %d rows, want the chain's %d", i+1, n, 1+s.Info().Chain)
		}
		wantOffsets(t, load(t, open(t, j, "keep")), want)
	}
}

// A chain that cannot be read whole fails Open with ErrCorruptSnapshot:
// never a partial load.
func testBrokenChainFailsOpen(t *testing.T, j journal.Journal) {
	ctx := t.Context()
	full := func(seq uint64, m map[string]uint64) journal.Event {
		p, err := codec.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return journal.Event{SequenceNr: seq, Payload: p, Manifest: codec.Manifest, Tags: []string{store.Tag}}
	}
	delta := func(seq, base, root uint64, set map[string]uint64) journal.Event {
		p, err := codec.EncodeDelta(codec.Delta{Base: base, Root: root, Set: set})
		if err != nil {
			t.Fatal(err)
		}
		return journal.Event{SequenceNr: seq, Payload: p, Manifest: codec.DeltaManifest, Tags: []string{store.Tag}}
	}
	for _, tc := range []struct {
		name string
		rows []journal.Event
		bad  uint64 // the row Open must name
	}{
		{"Gap", []journal.Event{full(1, map[string]uint64{"a": 1}), delta(2, 1, 1, map[string]uint64{"a": 2}), delta(4, 3, 1, map[string]uint64{"a": 4})}, 4},
		{"MissingBase", []journal.Event{delta(5, 4, 3, map[string]uint64{"a": 5}), delta(6, 5, 3, map[string]uint64{"a": 6})}, 5},
		{"WrongBase", []journal.Event{full(1, map[string]uint64{"a": 1}), delta(2, 1, 1, nil), delta(3, 1, 1, nil)}, 3},
		{"WrongRoot", []journal.Event{full(1, map[string]uint64{"a": 1}), delta(2, 1, 1, nil), full(3, nil), delta(4, 3, 1, nil)}, 4},
		{"CorruptDelta", []journal.Event{full(1, map[string]uint64{"a": 1}), {SequenceNr: 2, Payload: []byte("not a delta"), Manifest: codec.DeltaManifest}}, 2},
	} {
		outbox := "broken-" + tc.name
		for i := range tc.rows {
			tc.rows[i].PersistenceID = store.PersistenceID(outbox)
		}
		if err := j.Append(ctx, tc.rows...); err != nil {
			t.Fatal(err)
		}
		_, err := store.Open(ctx, j, outbox)
		var ce *store.CorruptSnapshotError
		if !errors.Is(err, store.ErrCorruptSnapshot) || !errors.As(err, &ce) || ce.SequenceNr != tc.bad {
			t.Fatalf("%s: Open = %v, want ErrCorruptSnapshot naming row %d", tc.name, err, tc.bad)
		}
	}
}

// A reader of full snapshots (this project's earlier releases read the
// newest row with codec.Decode) refuses a delta row loudly.
func testFullReadersRefuseDeltas(t *testing.T, j journal.Journal) {
	s := open(t, j, "old", store.WithIncremental(), store.WithCompactionRatio(1e9))
	save(t, s, map[string]uint64{"a": 1})
	save(t, s, map[string]uint64{"a": 2})
	last, ok, err := j.Last(t.Context(), s.PersistenceID())
	if err != nil || !ok || last.Manifest != codec.DeltaManifest {
		t.Fatalf("newest row: %+v, %v, %v", last, ok, err)
	}
	if m, err := codec.Decode(last.Payload); err == nil {
		t.Fatalf("codec.Decode of a delta row = %v, want an error", m)
	}
	if _, err := store.DecodeSnapshot(last); !errors.Is(err, store.ErrCorruptSnapshot) {
		t.Fatalf("DecodeSnapshot of a delta row = %v, want ErrCorruptSnapshot", err)
	}
	r, err := store.DecodeRow(last)
	if err != nil || r.Kind != store.RowDelta || r.Base != 1 || r.Root != 1 || !maps.Equal(r.Offsets, map[string]uint64{"a": 2}) {
		t.Fatalf("DecodeRow = %+v, %v", r, err)
	}
}

// A compaction is one row: a crash before it, a lost acknowledgement of
// it and a failed prune after it each leave an outbox that opens to the
// last acknowledged offsets.
func testCompactionCrashPoints(t *testing.T, base journal.Journal) {
	ctx := t.Context()
	for _, point := range []string{"before", "after commit", "prune"} {
		fj := faultjournal.New(base)
		outbox := "crash-" + point
		opts := []store.Option{store.WithIncremental(), store.WithMaxDeltas(2), store.WithCompactionRatio(1e9), store.WithRetention(1), store.WithPruneInterval(1)}
		s := open(t, fj, outbox, opts...)
		save(t, s, map[string]uint64{"a": 1})
		save(t, s, map[string]uint64{"a": 2})
		save(t, s, map[string]uint64{"a": 3}) // rows F d d: the next save compacts
		acked := map[string]uint64{"a": 3}
		switch point {
		case "before":
			fj.FailBeforeCommit.Store(1)
		case "after commit":
			fj.FailAfterCommit.Store(1)
			fj.FailLast.Store(1) // and the read-back fails: in doubt
		case "prune":
			fj.FailDeleteTo.Store(1)
		}
		err := s.Save(ctx, map[string]uint64{"a": 4})
		if point == "prune" {
			if err != nil {
				t.Fatalf("%s: Save = %v", point, err)
			}
			acked["a"] = 4
		} else if err == nil {
			t.Fatalf("%s: Save = nil, want an error", point)
		}
		// The process dies here; a new one opens the outbox.
		got := load(t, open(t, base, outbox, opts...))
		switch {
		case point == "after commit" && got["a"] == 4: // the compaction committed: also acknowledged-or-newer
		case maps.Equal(got, acked):
		default:
			t.Fatalf("%s: reopened offsets %v, want %v", point, got, acked)
		}
	}
}

// SaveTx in incremental mode writes a delta through the transaction.
func testSaveTxWritesDelta(t *testing.T, j journal.Journal) {
	s := open(t, j, "tx", store.WithIncremental(), store.WithCompactionRatio(1e9))
	save(t, s, map[string]uint64{"a": 1, "b": 1})
	committed := false
	err := s.SaveTx(t.Context(), j, map[string]uint64{"b": 2}, func(context.Context) error { committed = true; return nil })
	if err != nil || !committed {
		t.Fatalf("SaveTx = %v (committed %v)", err, committed)
	}
	if got, want := kinds(t, j, s.PersistenceID()), "Fd"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	wantOffsets(t, load(t, open(t, j, "tx")), map[string]uint64{"a": 1, "b": 2})
}

// A committer on a store in incremental mode saves the keys that moved as
// deltas, tracked keys held back as in full mode.
func testCommitterSavesDeltas(t *testing.T, j journal.Journal) {
	s := open(t, j, "committer", store.WithIncremental(), store.WithCompactionRatio(1e9), store.WithoutPruning())
	save(t, s, manyKeys(20, 1))
	c := newCommitter(t, s, quiet...)
	if err := c.Mark("stream-00003", 5); err != nil {
		t.Fatal(err)
	}
	if err := c.Track("stream-00004", 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Mark("stream-00004", 3); err != nil { // above a pending 2: held back
		t.Fatal(err)
	}
	flush(t, c)
	if err := c.Mark("stream-00004", 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(t, j, s.PersistenceID()), "Fdd"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	want := manyKeys(20, 1)
	want["stream-00003"], want["stream-00004"] = 5, 3
	wantOffsets(t, load(t, open(t, j, "committer")), want)
}

// Rows lost under a running store (a failover to a replica that missed
// the newest commits, a restore): its next delta would lie on a gap that
// Open refuses. The journal refuses it (AppendSuccessor), and the store
// writes a full snapshot of what it acknowledged instead, in both modes.
func TestIncrementalLostRowsOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	for _, mode := range chainModes {
		outbox := "lost-" + mode.name
		s := open(t, j, outbox, mode.opts...)
		for i := range 5 {
			save(t, s, map[string]uint64{fmt.Sprint("k", i): uint64(i + 1)})
		}
		// The newest two rows are gone: the journal ends at 3.
		if _, err := db.Pool.Exec(ctx, `DELETE FROM journal WHERE persistence_id = $1 AND sequence_nr > 3`, s.PersistenceID()); err != nil {
			t.Fatal(err)
		}
		save(t, s, map[string]uint64{"k9": 9})
		want := load(t, s)
		if !maps.Equal(want, map[string]uint64{"k0": 1, "k1": 2, "k2": 3, "k3": 4, "k4": 5, "k9": 9}) {
			t.Fatalf("%s: Load = %v", mode.name, want)
		}
		if got := kinds(t, j, s.PersistenceID()); mode.opts != nil && got[len(got)-1] != 'F' {
			t.Fatalf("%s: rows %s, want a full snapshot last", mode.name, got)
		}
		wantOffsets(t, load(t, open(t, j, outbox, mode.opts...)), want)
		// And deltas again after it.
		save(t, s, map[string]uint64{"k9": 10})
		want["k9"] = 10
		wantOffsets(t, load(t, open(t, j, outbox)), want)
	}
}

// A SaveTx whose commit returns nil but whose writes never commit (a
// nested transaction's release, which the docs warn against): the store
// records the save, its next delta would build on the missing row, and
// is written as a full snapshot instead.
func testSaveTxNotDurableThenDelta(t *testing.T, j journal.Journal) {
	ctx := t.Context()
	s := open(t, j, "tx-gone", store.WithIncremental(), store.WithCompactionRatio(1e9))
	save(t, s, map[string]uint64{"a": 1})
	gone := journal.NewMemory() // the savepoint's view, gone with the outer rollback
	if err := gone.Append(ctx, rows(t, j, s.PersistenceID())...); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTx(ctx, gone, map[string]uint64{"b": 1}, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	save(t, s, map[string]uint64{"c": 1})
	want := map[string]uint64{"a": 1, "b": 1, "c": 1}
	wantOffsets(t, load(t, s), want)
	wantOffsets(t, load(t, open(t, j, "tx-gone")), want)
}

// A caller that saves its whole map, one key of it moved, gets a delta of
// that key, not a full snapshot: the row follows the keys that moved, not
// the keys named.
func testWholeMapOneKeyMoves(t *testing.T, j journal.Journal) {
	s := open(t, j, "whole", store.WithIncremental(), store.WithoutPruning())
	m := manyKeys(2000, 1)
	save(t, s, m)
	for i := range 5 {
		m[fmt.Sprintf("stream-%05d", i)] = 2
		save(t, s, m)
	}
	if got, want := kinds(t, j, s.PersistenceID()), "Fddddd"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	for _, ev := range rows(t, j, s.PersistenceID())[1:] {
		if d, err := codec.DecodeDelta(ev.Payload); err != nil || len(d.Set) != 1 {
			t.Fatalf("row %d: %v, %v: want a delta of the one key that moved", ev.SequenceNr, d.Set, err)
		}
	}
	wantOffsets(t, load(t, open(t, j, "whole")), m)
	// Every key moving: a full snapshot.
	save(t, s, manyKeys(2000, 3))
	if got := kinds(t, j, s.PersistenceID()); got[len(got)-1] != 'F' {
		t.Fatalf("rows %s, want a full snapshot when every key moves", got)
	}
}

// A compaction whose acknowledgement was lost, adopted at the next write,
// counts as a compaction.
func testAdoptedCompactionCounted(t *testing.T, base journal.Journal) {
	fj := faultjournal.New(base)
	s := open(t, fj, "counted", store.WithIncremental(), store.WithMaxDeltas(1), store.WithCompactionRatio(1e9))
	save(t, s, map[string]uint64{"a": 1}) // F1
	save(t, s, map[string]uint64{"a": 2}) // d2
	fj.FailAfterCommit.Store(1)
	fj.FailLast.Store(1)
	if err := s.Save(t.Context(), map[string]uint64{"a": 3}); !errors.Is(err, store.ErrInDoubt) { // F3, in doubt
		t.Fatalf("Save = %v, want ErrInDoubt", err)
	}
	save(t, s, map[string]uint64{"b": 1}) // adopts F3, writes d4
	if st := s.Stats(); st.Compactions != 2 || st.Adopted != 1 {
		t.Fatalf("stats %+v: want 2 compactions (F1 and the adopted F3), 1 adopted", st)
	}
}
