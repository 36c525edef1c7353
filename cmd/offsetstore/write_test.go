package main

import (
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// offsets reads the outbox's offsets through the store, as a relay would.
func (f *fixture) offsets(t *testing.T, outbox string) (map[string]uint64, uint64) {
	t.Helper()
	s, err := store.Open(t.Context(), pgjournal.New(f.db.Pool), outbox)
	if err != nil {
		t.Fatalf("open %q: %v", outbox, err)
	}
	m, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return m, s.SequenceNr()
}

var fixtureOffsets = fixtureSnapshots[len(fixtureSnapshots)-1].offsets

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	file := filepath.Join(t.TempDir(), "offsets.json")
	if err := os.WriteFile(file, []byte(`{"order-1": 2, "order-9": 4}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"rewind_dry", []string{"rewind", "orders", "order-1=5", "order-9=3", "order-2=3"}},
		{"forget_dry", []string{"forget", "orders", "order-2", "key with space", "absent"}},
		{"import_dry", []string{"import", "orders", file, "--replace"}},
		{"rewind_nochange", []string{"rewind", "orders", "order-2=3"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			before := f.rows(t)
			r := runCLI(t, f.args(tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			golden(t, tc.golden, strings.ReplaceAll(r.stdout, file, "FILE"))
			if after := f.rows(t); after != before {
				t.Fatalf("a dry run wrote: %d rows before, %d after", before, after)
			}
			if tc.golden == "forget_dry" && !strings.Contains(r.stderr, `note: key absent is not in outbox "orders"`) {
				t.Errorf("no note on the absent key: %q", r.stderr)
			}
		})
	}
	if m, seq := f.offsets(t, "orders"); seq != 5 || !maps.Equal(m, fixtureOffsets) {
		t.Fatalf("offsets changed: seq %d, %v", seq, m)
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	t.Run("rewind", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		out := mustRun(t, f.args("rewind", "orders", "order-1=5", "order-9=3", "--apply")...)
		if !strings.Contains(out, "wrote snapshot 6 as writer operator:offsetstore:") {
			t.Fatalf("output:\n%s", out)
		}
		// The writer id has the documented operator form.
		if ev, ok, err := pgjournal.New(f.db.Pool).Last(t.Context(), store.PersistenceID("orders")); err != nil || !ok || !store.IsOperatorWriter(ev.WriterUUID) {
			t.Fatalf("the CLI's snapshot: writer %q (%v, %v), want an operator's writer id", ev.WriterUUID, ok, err)
		}
		want := maps.Clone(fixtureOffsets)
		want["order-1"], want["order-9"] = 5, 3
		if m, seq := f.offsets(t, "orders"); seq != 6 || !maps.Equal(m, want) {
			t.Fatalf("seq %d, offsets %v; want 6, %v", seq, m, want)
		}
		history := mustRun(t, f.args("history", "orders")...)
		if !strings.Contains(history, "operator:offsetstore:") {
			t.Fatalf("the CLI is not the writer:\n%s", history)
		}
	})
	t.Run("forget", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		mustRun(t, f.args("forget", "orders", "order-2", "key with space", "--apply")...)
		want := maps.Clone(fixtureOffsets)
		delete(want, "order-2")
		delete(want, "key with space")
		if m, seq := f.offsets(t, "orders"); seq != 6 || !maps.Equal(m, want) {
			t.Fatalf("seq %d, offsets %v; want 6, %v", seq, m, want)
		}
	})
	t.Run("nothing to change", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		before := f.rows(t)
		out := mustRun(t, f.args("rewind", "orders", "order-2=3", "--apply")...)
		if !strings.Contains(out, "no change; nothing to write") || f.rows(t) != before {
			t.Fatalf("output:\n%s", out)
		}
	})
	t.Run("create", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		runCLI(t, f.args("rewind", "new-outbox", "a=1", "--apply")...).
			wantFailure(t, exitFailure, `outbox "new-outbox" not found: no snapshot under persistence id "outbox::new-outbox::offsets" in table "journal"; pass --create`)
		runCLI(t, f.args("forget", "new-outbox", "a", "--apply")...).wantFailure(t, exitFailure, `outbox "new-outbox" not found`)
		out := mustRun(t, f.args("rewind", "new-outbox", "a=1", "--apply", "--create")...)
		if !strings.Contains(out, `outbox "new-outbox" at no snapshot yet (0 keys)`) || !strings.Contains(out, "wrote snapshot 1") {
			t.Fatalf("output:\n%s", out)
		}
		if m, seq := f.offsets(t, "new-outbox"); seq != 1 || !maps.Equal(m, map[string]uint64{"a": 1}) {
			t.Fatalf("seq %d, offsets %v", seq, m)
		}
	})
}

func TestIfSeq(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before := f.rows(t)
	for _, args := range [][]string{
		{"rewind", "orders", "order-1=1", "--apply", "--if-seq", "4"},
		{"forget", "orders", "order-1", "--apply", "--if-seq", "4"},
		{"rewind", "orders", "order-1=1", "--if-seq", "6"}, // a dry run checks too
	} {
		r := runCLI(t, f.args(args...)...)
		r.wantFailure(t, exitConflict, `outbox "orders" is at snapshot 5, not `)
		if !strings.Contains(r.stderr, "it moved since it was read; nothing written") {
			t.Errorf("stderr: %s", r.stderr)
		}
	}
	if after := f.rows(t); after != before {
		t.Fatalf("a refused write wrote: %d rows before, %d after", before, after)
	}
	out := mustRun(t, f.args("rewind", "orders", "order-1=1", "--apply", "--if-seq", "5")...)
	if !strings.Contains(out, "wrote snapshot 6") {
		t.Fatalf("output:\n%s", out)
	}
	// The same command again: the outbox is at 6 now.
	runCLI(t, f.args("rewind", "orders", "order-1=2", "--apply", "--if-seq", "5")...).
		wantFailure(t, exitConflict, "at snapshot 6, not 5")
}

// TestFencesRunningRelay: an applied change fences a relay that has the
// outbox open; reopening loads the change.
func TestFencesRunningRelay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	relay, err := store.Open(ctx, pgjournal.New(f.db.Pool), "orders")
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, f.args("rewind", "orders", "order-1=2", "--apply")...)
	if err := relay.Save(ctx, map[string]uint64{"order-1": 18}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("the relay's save after the CLI's write = %v, want ErrFenced", err)
	}
	if m, _ := f.offsets(t, "orders"); m["order-1"] != 2 {
		t.Fatalf("order-1 = %d after reopening, want the CLI's 2", m["order-1"])
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "orders.json")
	exported := mustRun(t, f.args("export", "orders")...)
	if err := os.WriteFile(file, []byte(exported), 0o644); err != nil {
		t.Fatal(err)
	}

	// Move the outbox away from the export, then restore it exactly.
	mustRun(t, f.args("rewind", "orders", "order-1=1", "order-8=8", "--apply")...)
	mustRun(t, f.args("forget", "orders", "order-3", "--apply")...)
	r := runCLI(t, f.args("import", "orders", file, "--replace", "--apply", "--if-seq", "7")...)
	if r.code != 0 {
		t.Fatalf("import: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "wrote snapshot 8 ") {
		t.Fatalf("import output:\n%s", r.stdout)
	}
	if m, seq := f.offsets(t, "orders"); seq != 8 || !maps.Equal(m, fixtureOffsets) {
		t.Fatalf("after import: seq %d, offsets %v; want %v", seq, m, fixtureOffsets)
	}

	// Into another outbox, from stdin.
	r = cli{stdin: exported}.run(t, f.args("import", "copy", "-", "--create", "--apply")...)
	if r.code != 0 {
		t.Fatalf("import -: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `note: - was exported from outbox "orders"; importing into "copy"`) {
		t.Errorf("no note on the other outbox: %q", r.stderr)
	}
	var copied snapshotDoc
	got := mustRun(t, f.args("export", "copy")...)
	if err := decodeJSON(got, &copied); err != nil || !maps.Equal(copied.Offsets, fixtureOffsets) || copied.Seq != 1 {
		t.Fatalf("export of the copy (%v):\n%s", err, got)
	}

	// A bare object sets only its keys.
	r = cli{stdin: `{"order-2": 1, "new": 7}`}.run(t, f.args("import", "orders", "-", "--apply")...)
	if r.code != 0 {
		t.Fatalf("import bare: exit %d: %s", r.code, r.stderr)
	}
	want := maps.Clone(fixtureOffsets)
	want["order-2"], want["new"] = 1, 7
	if m, _ := f.offsets(t, "orders"); !maps.Equal(m, want) {
		t.Fatalf("after the bare import: %v, want %v", m, want)
	}
}

func TestImportBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before := f.rows(t)
	t.Run("cases", func(t *testing.T) { // all of them before the count
		for _, tc := range []struct{ name, in, want string }{
			{"invalid UTF-8", "{\"a\xff\": 1}", "-: not valid UTF-8 (first bad byte at offset 3)"},
			{"lone surrogate", `{"a\ud800": 1}`, `a \u escape in it is not valid UTF-16`},
			{"duplicate", `{"a": 1, "a": 2}`, `duplicate name "a"`},
			{"duplicate in document", `{"offsets": {"a": 1, "a": 2}}`, `field offsets: duplicate name "a"`},
			{"fraction", `{"a": 1.5}`, `offset of key "a": want a whole number from 0 to 18446744073709551615, got 1.5`},
			{"negative", `{"a": -1}`, "got -1"},
			{"exponent", `{"a": 1e3}`, "got 1e3"},
			{"string", `{"a": "1"}`, `got "1"`},
			{"too large", `{"a": 18446744073709551616}`, "got 18446744073709551616"},
			{"empty key", `{"": 1}`, `invalid offset key: key "" is empty`},
			{"NUL key", `{"a\u0000": 1}`, "NUL"},
			{"array", `[1]`, `want a JSON object, got "["`},
			{"trailing", `{"a": 1} {}`, `unexpected "{" after the object`},
			{"truncated", `{"a": 1`, "unexpected end of input"},
			{"empty", ``, "unexpected end of input"},
			{"syntax", `{"a" 1}`, "invalid JSON at offset"},
			{"unknown field", `{"offsets": {"a": 1}, "offset": 2}`, `unknown field "offset"`},
			{"bad seq", `{"offsets": {}, "seq": "x"}`, "field seq: want a whole number"},
			{"bad outbox", `{"offsets": {}, "outbox": 5}`, "field outbox: want a string, got 5"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				r := cli{stdin: tc.in}.run(t, f.args("import", "orders", "-", "--apply")...)
				r.wantFailure(t, exitUsage, tc.want)
			})
		}
	})
	if after := f.rows(t); after != before {
		t.Errorf("bad input wrote: %d rows before, %d after", before, after)
	}
}

func TestParseOffsetsFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		want   map[string]uint64
		outbox string
	}{
		{`{}`, map[string]uint64{}, ""},
		{` {"a": 0, "b": 9223372036854775807} `, map[string]uint64{"a": 0, "b": 1<<63 - 1}, ""},
		{`{"a": 18446744073709551615}`, map[string]uint64{"a": 1<<64 - 1}, ""},
		{`{"offsets": 5}`, map[string]uint64{"offsets": 5}, ""}, // a bare object with a key named offsets
		{`{"outbox": "o", "seq": 3, "offsets": {"k": 1}}`, map[string]uint64{"k": 1}, "o"},
		{`{"k\ufffd": 1}`, map[string]uint64{"k\uFFFD": 1}, ""}, // a real U+FFFD is a valid key
		{"{\"k\uFFFD\": 1}", map[string]uint64{"k\uFFFD": 1}, ""},
		{`{"\ud83d\ude00": 1}`, map[string]uint64{"😀": 1}, ""},
	} {
		f, err := parseOffsetsFile([]byte(tc.in))
		if err != nil || !maps.Equal(f.offsets, tc.want) || f.outbox != tc.outbox {
			t.Errorf("parseOffsetsFile(%s) = %+v, %v; want %v", tc.in, f, err, tc.want)
		}
	}
}

// TestFencedWhileWriting makes another writer win the next snapshot
// between the CLI's open and its write: the CLI's insert of that snapshot
// is held (by a trigger waiting for a lock the test holds) after its check
// found the number free, another writer commits the row at that number,
// and the held insert then meets it (a unique violation), as two writers
// racing on a journal do.
func TestFencedWhileWriting(t *testing.T) {
	t.Parallel()
	const seq = 6
	// race runs the command line with its insert of snapshot seq held
	// until another writer has written that snapshot, and returns the
	// command's result.
	race := func(t *testing.T, f *fixture, c cli, args ...string) result {
		t.Helper()
		ctx := t.Context()
		if _, err := f.db.Pool.Exec(ctx, `
CREATE FUNCTION race() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.writer_uuid LIKE 'operator:offsetstore:%' AND NEW.sequence_nr = `+strconv.Itoa(seq)+` THEN
    PERFORM pg_advisory_xact_lock(724201);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER race BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION race();`); err != nil {
			t.Fatal(err)
		}
		holder, err := f.db.Pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Release()
		holderPID := holder.Conn().PgConn().PID()
		if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock(724201)`); err != nil {
			t.Fatal(err)
		}
		done := make(chan result, 1)
		go func() { done <- c.run(t, args...) }()
		// Once the CLI's insert waits for the lock, another writer takes
		// the number.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var waiting bool
			// A session of this database that the holder blocks (the
			// sibling test holds the same key in a database of its own).
			if err := f.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND $1::int = ANY (pg_blocking_pids(pid)))`, holderPID).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting {
				break
			}
			select {
			case r := <-done:
				t.Fatalf("the command ended before its insert was held: %d\n%s", r.code, r.stderr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the command's insert never reached the trigger")
			}
			time.Sleep(10 * time.Millisecond)
		}
		payload, err := codec.Encode(map[string]uint64{"order-1": 99})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
			VALUES ('outbox::orders::offsets', $1, $2, $3, 'another-relay', $4)`, seq, payload, codec.Manifest, []string{store.Tag}); err != nil {
			t.Fatal(err)
		}
		if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock(724201)`); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	// operatorRows counts the CLI's rows at seq.
	operatorRows := func(t *testing.T, f *fixture) int {
		t.Helper()
		var n int
		if err := f.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM journal WHERE writer_uuid LIKE 'operator:offsetstore:%' AND sequence_nr >= $1`, seq).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("nothing written", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		before := f.rows(t)
		r := race(t, f, cli{}, f.args("rewind", "orders", "order-1=1", "--apply", "--if-seq", "5")...)
		r.wantFailure(t, exitConflict, "fenced")
		if !strings.Contains(r.stderr, "another writer wrote snapshot 6 first; nothing written") {
			t.Errorf("stderr: %s", r.stderr)
		}
		if n := operatorRows(t, f); n != 0 || f.rows(t) != before+1 {
			t.Fatalf("a fenced write wrote: %d rows of the CLI, %d rows (before %d, plus the other writer's)", n, f.rows(t), before)
		}
	})
	t.Run("replace is atomic", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		before := f.rows(t)
		r := race(t, f, cli{stdin: `{"order-1": 1}`}, f.args("import", "orders", "-", "--replace", "--apply")...)
		r.wantFailure(t, exitConflict, "another writer wrote snapshot 6 first; nothing written")
		if n := operatorRows(t, f); n != 0 || f.rows(t) != before+1 {
			t.Fatalf("a fenced import --replace wrote part of its change: %d rows of the CLI, %d rows (before %d, plus the other writer's)", n, f.rows(t), before)
		}
	})
}

// TestWriteKeepsRelayHistory: an operator's write does not prune the
// snapshots that the relay's own retention keeps (issue 11, item 5).
func TestWriteKeepsRelayHistory(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"rewind", "kept", "k=1", "--apply"},
		{"forget", "kept", "k", "--apply"},
		{"import", "kept", "-", "--replace", "--apply"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := t.Context()
			j := pgjournal.New(f.db.Pool)
			relay, err := store.Open(ctx, j, "kept", store.WithRetention(10))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 12 {
				if err := relay.Save(ctx, map[string]uint64{"k": uint64(i + 1)}); err != nil {
					t.Fatal(err)
				}
			}
			before := liveSeqs(t, f, "kept")
			if len(before) < 10 {
				t.Fatalf("the relay kept %d snapshots, want at least its retention of 10", len(before))
			}
			r := cli{stdin: `{"other": 1}`}.run(t, f.args(args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			after := liveSeqs(t, f, "kept")
			if want := append(slices.Clone(before), 13); !slices.Equal(after, want) {
				t.Fatalf("snapshots after the CLI's write: %v, want the relay's %v and the new 13", after, before)
			}
		})
	}
}

// liveSeqs lists the sequence numbers of outbox's snapshot rows.
func liveSeqs(t *testing.T, f *fixture, outbox string) []uint64 {
	t.Helper()
	var seqs []uint64
	for ev, err := range pgjournal.New(f.db.Pool).Replay(t.Context(), store.PersistenceID(outbox), 1, math.MaxUint64, math.MaxUint64) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ev.SequenceNr)
	}
	return seqs
}

// TestImportLoneSurrogate: a \u escape that is not valid UTF-16 is refused
// wherever it is, whatever else the string holds (issue 11, item 6).
func TestImportLoneSurrogate(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"a\ud800": 1}`,
		`{"a\ud800\\ufffd": 1}`,
		`{"\\ufffd\ud800": 1}`,
		`{"a\udc00b\ufffd": 1}`,
		`{"\ud800\ud800": 1}`,
		`{"ok": 1, "a\uDBFFx": 2}`,
		`{"offsets": {"k\ud83d": 1}}`,
		`{"outbox": "o\ud800", "offsets": {"k": 1}}`,
	} {
		if f, err := parseOffsetsFile([]byte(in)); err == nil || !strings.Contains(err.Error(), "not valid UTF-16") {
			t.Errorf("parseOffsetsFile(%s) = %+v, %v; want a lone surrogate refused", in, f, err)
		}
	}
	// An escaped backslash before "u" is no escape.
	f, err := parseOffsetsFile([]byte(`{"a\\ud800": 1}`))
	if err != nil || !maps.Equal(f.offsets, map[string]uint64{`a\ud800`: 1}) {
		t.Fatalf("parseOffsetsFile = %+v, %v; want the key a\\ud800 as text", f, err)
	}
}

// TestExportImportFullRange: every offset the store can hold, up to
// math.MaxUint64, goes through export and import unchanged (issue 11,
// item 6).
func TestExportImportFullRange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	want := map[string]uint64{"zero": 0, "int64": math.MaxInt64, "above": 1 << 63, "max": math.MaxUint64}
	s, err := store.Open(ctx, pgjournal.New(f.db.Pool), "wide")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	exported := mustRun(t, f.args("export", "wide")...)
	r := cli{stdin: exported}.run(t, f.args("import", "wide-copy", "-", "--create", "--apply")...)
	if r.code != 0 {
		t.Fatalf("import of the export: exit %d: %s", r.code, r.stderr)
	}
	if m, _ := f.offsets(t, "wide-copy"); !maps.Equal(m, want) {
		t.Fatalf("after export and import: %v, want %v", m, want)
	}
	mustRun(t, f.args("rewind", "wide-copy", "max=0", "--apply")...)
	mustRun(t, f.args("rewind", "wide-copy", "max=18446744073709551615", "--apply")...)
	if m, _ := f.offsets(t, "wide-copy"); !maps.Equal(m, want) {
		t.Fatalf("after rewinding max back: %v, want %v", m, want)
	}
}

// TestWriteHelp: the help of every write tells what the code does: one
// snapshot, no pruning, the offset range (issue 11, items 5 and 6).
func TestWriteHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"rewind", "forget", "import"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			out := mustRun(t, cmd, "--help")
			flat := strings.Join(strings.Fields(out), " ")
			for _, want := range []string{"one snapshot", "prunes nothing", "its next write"} {
				if !strings.Contains(flat, want) {
					t.Errorf("%s --help does not say %q:\n%s", cmd, want, out)
				}
			}
			for _, stale := range []string{"two with --replace", "set first, then dropped", "(store.Rewind)", "(store.Forget)"} {
				if strings.Contains(flat, stale) {
					t.Errorf("%s --help still says %q:\n%s", cmd, stale, out)
				}
			}
			if cmd != "forget" && !strings.Contains(flat, "18446744073709551615") {
				t.Errorf("%s --help does not give the offset range:\n%s", cmd, out)
			}
		})
	}
}
