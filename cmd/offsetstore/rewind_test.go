package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// timedBase is the morning the timed fixture's events were written.
var timedBase = time.Date(2026, time.December, 1, 9, 0, 0, 0, time.UTC)

// minute returns timedBase + m minutes.
func minute(m int) time.Time { return timedBase.Add(time.Duration(m) * time.Minute) }

// timedOffsets are the offsets of the outbox "timed": every key at the
// head of its stream, s-none (no stream left) at 7.
var timedOffsets = map[string]uint64{"s-a": 5, "s-b": 3, "s-gone": 4, "s-pruned": 6, "s-none": 7, "s-same": 3}

// newTimedFixture writes the outbox "timed" and its source streams, each
// event with a known written_at:
//
//	s-a       1..5 at 09:01, 09:02, 09:03, 09:04, 09:05
//	s-b       1..3 at 09:10, 09:20, 09:30
//	s-gone    1..4 at 09:01..09:04, deleted to 4 (DeleteTo): only row 4 is left, marked deleted
//	s-pruned  1..6 at 09:01..09:06, deleted to 3: rows 4..6 are left
//	s-same    1..3 all at 09:03:00 (one transaction)
//	s-unseen  1..2 at 09:01, 09:02: no key of the outbox
//	s-none    no row at all (its stream is gone), a key of the outbox at 7
func newTimedFixture(t *testing.T) *fixture {
	t.Helper()
	db := testdb.New(t)
	at := map[string][]time.Time{
		"s-a":      {minute(1), minute(2), minute(3), minute(4), minute(5)},
		"s-b":      {minute(10), minute(20), minute(30)},
		"s-gone":   {minute(1), minute(2), minute(3), minute(4)},
		"s-pruned": {minute(1), minute(2), minute(3), minute(4), minute(5), minute(6)},
		"s-same":   {minute(3), minute(3), minute(3)},
		"s-unseen": {minute(1), minute(2)},
	}
	for pid, times := range at {
		for i, w := range times {
			insertAt(t, db.Pool, pid, i+1, w)
		}
	}
	j := pgjournal.New(db.Pool)
	for pid, to := range map[string]uint64{"s-gone": 4, "s-pruned": 3} {
		if err := j.DeleteTo(t.Context(), pid, to); err != nil {
			t.Fatal(err)
		}
	}
	s, err := store.Open(t.Context(), j, "timed")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(t.Context(), timedOffsets); err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db}
}

// insertAt inserts event seq of pid with written_at at, through SQL: the
// journal sets written_at itself.
func insertAt(t *testing.T, pool *pgxpool.Pool, pid string, seq int, at time.Time) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at) VALUES ($1, $2, $3, $4)`,
		pid, seq, fmt.Appendf(nil, "%s/%d", pid, seq), at); err != nil {
		t.Fatalf("insert (%s, %d): %v", pid, seq, err)
	}
}

// rewindCase runs one rewind with --apply and checks the offsets after it.
type rewindCase struct {
	name string
	args []string // after "rewind timed"
	want map[string]uint64
}

func runRewindCases(t *testing.T, newF func(*testing.T) *fixture, outbox string, cases []rewindCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newF(t)
			before, seq := f.offsets(t, outbox)
			out := mustRun(t, f.args(append([]string{"rewind", outbox, "--apply"}, tc.args...)...)...)
			got, seqAfter := f.offsets(t, outbox)
			want := maps.Clone(before)
			maps.Copy(want, tc.want)
			if !maps.Equal(got, want) {
				t.Fatalf("offsets after rewind %s:\n got %v\nwant %v\noutput:\n%s", strings.Join(tc.args, " "), got, want, out)
			}
			if maps.Equal(before, want) {
				if seqAfter != seq || !strings.Contains(out, "no change; nothing to write") {
					t.Fatalf("a rewind that changes nothing wrote snapshot %d (was %d):\n%s", seqAfter, seq, out)
				}
				return
			}
			if seqAfter != seq+1 || !strings.Contains(out, fmt.Sprintf("wrote snapshot %d as writer operator:offsetstore:", seq+1)) {
				t.Fatalf("snapshot %d after the rewind (was %d), want one more, by the operator:\n%s", seqAfter, seq, out)
			}
		})
	}
}

// TestRewindToDatetime: --to-datetime on known written_at values. Before
// T means written_at < T: an event written at T exactly is published again.
func TestRewindToDatetime(t *testing.T) {
	t.Parallel()
	runRewindCases(t, newTimedFixture, "timed", []rewindCase{
		{"before the first event", []string{"--all-keys", "--to-datetime", "2026-12-01T09:00:00Z"},
			map[string]uint64{"s-a": 0, "s-b": 0, "s-gone": 0, "s-pruned": 0, "s-none": 0, "s-same": 0}},
		{"exactly on an event's time", []string{"--all-keys", "--to-datetime", "2026-12-01T09:03:00Z"},
			// s-a: 3 was written at 09:03, not before; s-same: all three at 09:03;
			// s-gone: rows 1..3 are deleted, row 4 (09:04) is after; s-pruned: rows 4.. after.
			map[string]uint64{"s-a": 2, "s-b": 0, "s-gone": 0, "s-pruned": 0, "s-none": 0, "s-same": 0}},
		{"a microsecond after it", []string{"--all-keys", "--to-datetime", "2026-12-01T09:03:00.000001Z"},
			map[string]uint64{"s-a": 3, "s-b": 0, "s-gone": 0, "s-pruned": 0, "s-none": 0, "s-same": 3}},
		{"a nanosecond after it", []string{"--all-keys", "--to-datetime", "2026-12-01T09:03:00.000000001Z"},
			map[string]uint64{"s-a": 3, "s-b": 0, "s-gone": 0, "s-pruned": 0, "s-none": 0, "s-same": 3}},
		{"between events", []string{"--all-keys", "--to-datetime", "2026-12-01T09:25:00Z"},
			map[string]uint64{"s-a": 5, "s-b": 2, "s-gone": 4, "s-pruned": 6, "s-none": 0, "s-same": 3}},
		{"after the last event", []string{"--all-keys", "--to-datetime", "2027-01-01T00:00:00Z"},
			map[string]uint64{"s-a": 5, "s-b": 3, "s-gone": 4, "s-pruned": 6, "s-none": 0, "s-same": 3}},
		{"no zone is UTC (Kafka's form)", []string{"--all-keys", "--to-datetime", "2026-12-01T09:03:00.000"},
			map[string]uint64{"s-a": 2, "s-b": 0, "s-gone": 0, "s-pruned": 0, "s-none": 0, "s-same": 0}},
		{"another zone", []string{"s-a", "--to-datetime", "2026-12-01T10:04:30+01:00"}, map[string]uint64{"s-a": 4}},
		{"zone without a colon", []string{"s-a", "--to-datetime", "2026-12-01T04:04:30-0500"}, map[string]uint64{"s-a": 4}},
		{"a date alone is midnight UTC", []string{"s-a", "--to-datetime", "2026-12-02"}, map[string]uint64{"s-a": 5}},
		{"keys named, one not in the outbox", []string{"s-b", "s-unseen", "--to-datetime", "2026-12-01T09:15:00Z"},
			map[string]uint64{"s-b": 1, "s-unseen": 2}},
		{"a key never written", []string{"nobody", "--to-datetime", "2026-12-01T09:15:00Z"}, map[string]uint64{"nobody": 0}},
	})
}

// TestRewindModes: --shift-by, --to-earliest and --to-latest, and their
// edges: shifts past either end, a key whose stream is gone (no row: head
// 0), one deleted to its highest row (the head is that row).
func TestRewindModes(t *testing.T) {
	t.Parallel()
	runRewindCases(t, newTimedFixture, "timed", []rewindCase{
		{"shift back", []string{"--all-keys", "--shift-by", "-2"},
			// s-none: 7 - 2 = 5, above its head 0.
			map[string]uint64{"s-a": 3, "s-b": 1, "s-gone": 2, "s-pruned": 4, "s-none": 0, "s-same": 1}},
		{"shift back past the start", []string{"s-a", "s-b", "--shift-by", "-100"}, map[string]uint64{"s-a": 0, "s-b": 0}},
		{"shift back by the most", []string{"s-a", "--shift-by=-9223372036854775808"}, map[string]uint64{"s-a": 0}},
		{"shift forward past the head", []string{"s-a", "--shift-by", "100"}, map[string]uint64{"s-a": 5}},
		{"shift forward by the most", []string{"s-a", "--shift-by", "9223372036854775807"}, map[string]uint64{"s-a": 5}},
		{"shift 0 clamps to the head", []string{"s-none", "--shift-by", "0"}, map[string]uint64{"s-none": 0}},
		{"shift a key not in the outbox", []string{"s-unseen", "--shift-by", "1"}, map[string]uint64{"s-unseen": 1}},
		{"to earliest", []string{"--all-keys", "--to-earliest"},
			map[string]uint64{"s-a": 0, "s-b": 0, "s-gone": 0, "s-pruned": 0, "s-none": 0, "s-same": 0}},
		{"to latest", []string{"--all-keys", "--to-latest"},
			// Every key is at its head already but s-none, whose stream is gone.
			map[string]uint64{"s-none": 0}},
		{"to latest, a key not in the outbox", []string{"s-unseen", "--to-latest"}, map[string]uint64{"s-unseen": 2}},
	})
}

// TestRewindByDuration: T = now - D, on events written relative to now.
func TestRewindByDuration(t *testing.T) {
	t.Parallel()
	newF := func(t *testing.T) *fixture {
		db := testdb.New(t)
		now := time.Now()
		for i, ago := range []time.Duration{50 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour, time.Minute} {
			insertAt(t, db.Pool, "recent", i+1, now.Add(-ago))
		}
		s, err := store.Open(t.Context(), pgjournal.New(db.Pool), "recent")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(t.Context(), map[string]uint64{"recent": 5}); err != nil {
			t.Fatal(err)
		}
		return &fixture{db: db}
	}
	runRewindCases(t, newF, "recent", []rewindCase{
		{"Go duration", []string{"--all-keys", "--by-duration", "90m"}, map[string]uint64{"recent": 3}},
		{"Go duration, hours", []string{"--all-keys", "--by-duration", "2h30m"}, map[string]uint64{"recent": 2}},
		{"ISO 8601", []string{"--all-keys", "--by-duration", "PT90M"}, map[string]uint64{"recent": 3}},
		{"ISO 8601 with days", []string{"--all-keys", "--by-duration", "P1DT1H"}, map[string]uint64{"recent": 1}},
		{"ISO 8601, lower case", []string{"--all-keys", "--by-duration", "pt5m"}, map[string]uint64{"recent": 4}},
		{"longer than the stream", []string{"--all-keys", "--by-duration", "P30D"}, map[string]uint64{"recent": 0}},
		{"zero", []string{"--all-keys", "--by-duration", "0s"}, map[string]uint64{"recent": 5}},
	})
}

// TestRewindDryRun: the diff of a reset, with its notes and summary, and
// nothing written.
func TestRewindDryRun(t *testing.T) {
	t.Parallel()
	f := newTimedFixture(t)
	before := f.rows(t)
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"rewind_datetime_dry", []string{"rewind", "timed", "--all-keys", "--to-datetime", "2026-12-01T09:03:00Z"}},
		{"rewind_latest_dry", []string{"rewind", "timed", "s-a", "s-none", "s-unseen", "--to-latest"}},
		{"rewind_limit_dry", []string{"rewind", "timed", "--all-keys", "--to-earliest", "--limit", "2"}},
	} {
		golden(t, tc.golden, mustRun(t, f.args(tc.args...)...))
	}
	if after := f.rows(t); after != before {
		t.Fatalf("a dry run wrote: %d rows before, %d after", before, after)
	}
}

// TestRewindKeysFrom: keys from a file and from standard input, CRLF line
// ends, empty lines and repeats, together with keys named.
func TestRewindKeysFrom(t *testing.T) {
	t.Parallel()
	f := newTimedFixture(t)
	file := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(file, []byte("s-a\r\n\r\ns-b\ns-a\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, f.args("rewind", "timed", "s-same", "--keys-from", file, "--to-earliest", "--apply")...)
	want := maps.Clone(timedOffsets)
	want["s-a"], want["s-b"], want["s-same"] = 0, 0, 0
	if m, _ := f.offsets(t, "timed"); !maps.Equal(m, want) {
		t.Fatalf("after --keys-from: %v, want %v", m, want)
	}
	r := cli{stdin: "s-pruned\n"}.run(t, f.args("rewind", "timed", "--keys-from", "-", "--to-earliest", "--apply")...)
	if r.code != 0 {
		t.Fatalf("--keys-from -: exit %d: %s", r.code, r.stderr)
	}
	want["s-pruned"] = 0
	if m, _ := f.offsets(t, "timed"); !maps.Equal(m, want) {
		t.Fatalf("after --keys-from -: %v, want %v", m, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"\n\n", "no keys in it"},
		{"ok\nbad\x00key\n", "line 2: store: invalid offset key"},
		{"k\xff\n", "line 1: store: invalid offset key"},
	} {
		r := cli{stdin: tc.in}.run(t, f.args("rewind", "timed", "--keys-from", "-", "--to-earliest")...)
		r.wantFailure(t, exitUsage, tc.want)
	}
}

// TestRewindIfSeq: --if-seq and fencing apply to resets as to pairs.
func TestRewindIfSeq(t *testing.T) {
	t.Parallel()
	f := newTimedFixture(t)
	before := f.rows(t)
	_, seq := f.offsets(t, "timed")
	r := runCLI(t, f.args("rewind", "timed", "--all-keys", "--to-earliest", "--apply", "--if-seq", fmt.Sprint(seq+1))...)
	r.wantFailure(t, exitConflict, "it moved since it was read; nothing written")
	if f.rows(t) != before {
		t.Fatal("a refused reset wrote")
	}
	out := mustRun(t, f.args("rewind", "timed", "--all-keys", "--to-earliest", "--apply", "--if-seq", fmt.Sprint(seq))...)
	if !strings.Contains(out, fmt.Sprintf("wrote snapshot %d", seq+1)) {
		t.Fatalf("output:\n%s", out)
	}
}

// TestRewindUsage: command lines rewind refuses before connecting.
func TestRewindUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--all-keys", "--to-earliest", "--to-latest"}, "--to-earliest and --to-latest: choose one reset mode"},
		{[]string{"k", "--shift-by", "1", "--to-datetime", "2026-01-01"}, "choose one reset mode"},
		{[]string{"--all-keys"}, "--all-keys and --keys-from choose the keys of a reset mode"},
		{[]string{"--keys-from", "x"}, "--all-keys and --keys-from choose the keys of a reset mode"},
		{[]string{"--to-latest"}, "a reset needs its keys"},
		{[]string{"k", "--all-keys", "--to-latest"}, "--all-keys takes every key of the outbox"},
		{[]string{"k\xff", "--to-latest"}, "not valid UTF-8"},
		{[]string{"--all-keys", "--to-datetime", "yesterday"}, `--to-datetime "yesterday": want a date-time`},
		{[]string{"--all-keys", "--to-datetime", "2026-02-30T00:00:00"}, "day 30: 2026-02 has days 01 to 28"},
		{[]string{"--all-keys", "--to-datetime", "2026-12-01T24:00:00"}, "hour 24"},
		{[]string{"--all-keys", "--to-datetime", "2026-12-01T09:00:00+25:00"}, "zone +25:00"},
		{[]string{"--all-keys", "--to-datetime", "0000-01-01T00:00:00Z"}, "the year must be from 0001"},
		{[]string{"--all-keys", "--to-datetime", "0001-01-01T00:30:00+01:00"}, "outside the years 0001 to 9999"},
		{[]string{"--all-keys", "--by-duration", "-1h"}, "a negative duration reaches into the future"},
		{[]string{"--all-keys", "--by-duration", "P"}, "want a Go duration"},
		{[]string{"--all-keys", "--by-duration", "PT"}, "want a Go duration"},
		{[]string{"--all-keys", "--by-duration", "P1M"}, "want a Go duration"},
		{[]string{"--all-keys", "--by-duration", "P200000D"}, "too long"},
		{[]string{"--all-keys", "--shift-by", "x"}, "invalid argument"},
		{[]string{"--all-keys", "--to-latest", "--limit", "-1"}, "--limit -1"},
		{[]string{"a=1", "--limit", "-1"}, "--limit -1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, append([]string{"rewind", "orders"}, tc.args...)...)
			r.wantFailure(t, exitUsage, tc.want)
		})
	}
}

func TestParseDateTime(t *testing.T) {
	t.Parallel()
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-01T09:00:00Z", utc(2026, 12, 1, 9, 0, 0, 0)},
		{"2026-12-01T09:00:00", utc(2026, 12, 1, 9, 0, 0, 0)},
		{"2026-12-01T09:00:00.000", utc(2026, 12, 1, 9, 0, 0, 0)},
		{"2026-12-01T09:00:00.5", utc(2026, 12, 1, 9, 0, 0, 500_000_000)},
		{"2026-12-01T09:00:00,123456789Z", utc(2026, 12, 1, 9, 0, 0, 123_456_789)},
		{"2026-12-01T09:00:00.000+01:00", utc(2026, 12, 1, 8, 0, 0, 0)},
		{"2026-12-01T09:00:00-0130", utc(2026, 12, 1, 10, 30, 0, 0)},
		{"2026-12-01T09:00:00+01", utc(2026, 12, 1, 8, 0, 0, 0)},
		{"2026-12-01t09:00:00z", utc(2026, 12, 1, 9, 0, 0, 0)},
		{"2026-12-01 09:00:00", utc(2026, 12, 1, 9, 0, 0, 0)},
		{"2026-12-01T09:00", utc(2026, 12, 1, 9, 0, 0, 0)},
		{"2026-12-01", utc(2026, 12, 1, 0, 0, 0, 0)},
		{"2024-02-29T00:00:00Z", utc(2024, 2, 29, 0, 0, 0, 0)},
		{"9999-12-31T23:59:59.999999999Z", utc(9999, 12, 31, 23, 59, 59, 999_999_999)},
		{"0001-01-01T00:00:00Z", utc(1, 1, 1, 0, 0, 0, 0)},
	} {
		got, err := parseDateTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseDateTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "2026-12-01T", "2026-12-01T9:00", "2026-13-01", "2023-02-29", "2026-12-01T09:00:60",
		"2026-12-01Z", "2026-12-01T09:00:00+1", "2026-12-01T09:00:00.1234567890", "1764579600", "10000-01-01"} {
		if got, err := parseDateTime(bad); err == nil {
			t.Errorf("parseDateTime(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"90m", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"0", 0},
		{"PT90M", 90 * time.Minute},
		{"P1D", 24 * time.Hour},
		{"P1DT12H", 36 * time.Hour},
		{"PT1H30M15S", time.Hour + 30*time.Minute + 15*time.Second},
		{"PT0.5S", 500 * time.Millisecond},
		{"pt2h", 2 * time.Hour},
		{"P0D", 0},
		{"P106751D", 106751 * 24 * time.Hour},
	} {
		got, err := parseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-5m", "-PT5M", "P", "PT", "P1W", "P1Y", "PT1.5H", "1d", "P1DT", "P106752D", "PT9223372037S"} {
		if got, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", bad, got)
		}
	}
}

func TestShifted(t *testing.T) {
	t.Parallel()
	const maxU = ^uint64(0)
	for _, tc := range []struct {
		offset uint64
		n      int64
		head   uint64
		want   uint64
	}{
		{5, -2, 10, 3}, {5, 2, 10, 7}, {5, 10, 10, 10}, {5, -5, 10, 0}, {5, -6, 10, 0},
		{5, -9223372036854775808, 10, 0}, {maxU, 9223372036854775807, maxU, maxU},
		{maxU, -1, 3, 3}, {7, 0, 0, 0}, {0, 3, 0, 0},
	} {
		if got := shifted(tc.offset, tc.n, tc.head); got != tc.want {
			t.Errorf("shifted(%d, %d, %d) = %d, want %d", tc.offset, tc.n, tc.head, got, tc.want)
		}
	}
}

// statementCounter counts the statements a pool sends whose SQL contains
// a marker, and the batches (several statements in one round trip).
type statementCounter struct {
	marker  string
	n       atomic.Int64
	batches atomic.Int64
}

func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}

func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, c.marker) {
		c.n.Add(1)
	}
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestRewindToDatetimeBatches: an outbox of more keys than one statement
// reads takes one statement per pgjournal.MaxHighestBatch keys.
func TestRewindToDatetimeBatches(t *testing.T) {
	t.Parallel()
	const keys = 2*pgjournal.MaxHighestBatch + 5
	f := &fixture{db: testdb.New(t)}
	ctx := t.Context()
	if _, err := f.db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at)
		SELECT 'k-' || k, s, '\x00'::bytea, $2::timestamptz + s * interval '1 minute'
		  FROM generate_series(1, $1::int) AS k, generate_series(1, 3) AS s`, keys, timedBase); err != nil {
		t.Fatal(err)
	}
	offsets := make(map[string]uint64, keys)
	for k := 1; k <= keys; k++ {
		offsets[fmt.Sprintf("k-%d", k)] = 3
	}
	s, err := store.Open(ctx, pgjournal.New(f.db.Pool), "big")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, offsets); err != nil {
		t.Fatal(err)
	}
	counter := &statementCounter{marker: "written_at <"}
	r := cli{configure: func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = counter }}.
		run(t, f.args("rewind", "big", "--all-keys", "--to-datetime", "2026-12-01T09:02:30Z", "--apply")...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got, want := counter.n.Load(), int64(3); got != want {
		t.Fatalf("%d statements read the sequence numbers written before T for %d keys, want %d (one per %d keys)", got, keys, want, pgjournal.MaxHighestBatch)
	}
	for _, want := range []string{fmt.Sprintf("%d changed, 0 added, 0 removed", keys), fmt.Sprintf("back: %d keys by %d events in all", keys, keys)} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	m, _ := f.offsets(t, "big")
	for k, v := range m {
		if v != 2 {
			t.Fatalf("%s = %d after the rewind, want 2", k, v)
		}
	}
}
