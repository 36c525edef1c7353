package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/cmd/internal/render"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// defaultDiffRows is how many changed keys rewind prints unless --limit
// says otherwise.
const defaultDiffRows = 20

// rewindFlags are rewind's flags: the write flags, a reset mode and the
// keys it applies to.
type rewindFlags struct {
	writeFlags

	toDatetime string
	byDuration string
	shiftBy    int64
	toEarliest bool
	toLatest   bool

	keysFrom string
	allKeys  bool
}

// resetKind is one of the reset modes of rewind.
type resetKind int

const (
	resetToDatetime resetKind = iota + 1 // --to-datetime and --by-duration
	resetShiftBy
	resetToEarliest
	resetToLatest
)

// reset is a reset mode with its argument, resolved from the flags.
type reset struct {
	kind  resetKind
	at    time.Time // resetToDatetime
	shift int64     // resetShiftBy
	flag  string    // the flag as given, for messages
}

// modeFlags are the flags that choose a reset mode.
var modeFlags = []string{"to-datetime", "by-duration", "shift-by", "to-earliest", "to-latest"}

// resetOf returns the reset mode the flags ask for, nil for none (explicit
// KEY=N pairs). now is the time --by-duration counts back from.
func (f *rewindFlags) resetOf(cmd *cobra.Command, now time.Time) (*reset, error) {
	var given []string
	for _, name := range modeFlags {
		if cmd.Flags().Changed(name) {
			given = append(given, "--"+name)
		}
	}
	switch {
	case len(given) == 0:
		return nil, nil
	case len(given) > 1:
		return nil, usageErrorf("%s: choose one reset mode", strings.Join(given, " and "))
	}
	r := &reset{flag: given[0]}
	switch given[0] {
	case "--to-datetime":
		at, err := parseDateTime(f.toDatetime)
		if err != nil {
			return nil, usageErrorf("--to-datetime %q: %v", f.toDatetime, err)
		}
		r.kind, r.at = resetToDatetime, at
		r.flag += " " + f.toDatetime
	case "--by-duration":
		d, err := parseDuration(f.byDuration)
		if err != nil {
			return nil, usageErrorf("--by-duration %q: %v", f.byDuration, err)
		}
		r.kind, r.at = resetToDatetime, now.Add(-d)
		r.flag += " " + f.byDuration
		if err := journal.ValidateTime(r.at); err != nil {
			return nil, usageErrorf("--by-duration %q reaches before the year 1", f.byDuration)
		}
	case "--shift-by":
		r.kind, r.shift = resetShiftBy, f.shiftBy
		r.flag += fmt.Sprintf(" %d", f.shiftBy)
	case "--to-earliest":
		r.kind = resetToEarliest
	case "--to-latest":
		r.kind = resetToLatest
	}
	return r, nil
}

// selection is the keys a reset applies to: the named ones, or all the
// outbox's keys.
type selection struct {
	keys []string // distinct, in the order given
	all  bool
}

func (s selection) resolve(before map[string]uint64) []string {
	if s.all {
		return slices.Sorted(maps.Keys(before))
	}
	return s.keys
}

// selectKeys reads the keys of a reset from the positional arguments,
// --keys-from and --all-keys.
func (a *app) selectKeys(f *rewindFlags, args []string) (selection, error) {
	if f.allKeys {
		if len(args) > 0 || f.keysFrom != "" {
			return selection{}, usageErrorf("--all-keys takes every key of the outbox: name no keys and no --keys-from")
		}
		return selection{all: true}, nil
	}
	var sel selection
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			sel.keys = append(sel.keys, k)
		}
	}
	for _, k := range args {
		if err := store.ValidateKey(k); err != nil {
			return selection{}, usageErrorf("key %.64q: %v", k, err)
		}
		add(k)
	}
	if f.keysFrom != "" {
		data, err := a.readFile(f.keysFrom)
		if err != nil {
			return selection{}, err
		}
		keys, err := parseKeyLines(data)
		if err != nil {
			return selection{}, usageErrorf("--keys-from %s: %v", f.keysFrom, err)
		}
		if len(keys) == 0 {
			return selection{}, usageErrorf("--keys-from %s: no keys in it", f.keysFrom)
		}
		for _, k := range keys {
			add(k)
		}
	}
	if len(sel.keys) == 0 {
		return selection{}, usageErrorf("a reset needs its keys: name them, or give --keys-from FILE or --all-keys")
	}
	return sel, nil
}

// parseKeyLines reads one key per line. A line ending in "\r\n" loses the
// "\r"; empty lines are skipped; every other line is a key as it is,
// spaces included, checked as the store checks keys.
func parseKeyLines(data []byte) ([]string, error) {
	var keys []string
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		k := string(line)
		if err := store.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// plan returns the plan of the reset r over sel: it reads what the mode
// needs of the journal (the streams' heads, or the highest sequence
// numbers written before a time), in batched round trips.
func (r *reset) plan(sel selection) planFunc {
	return func(ctx context.Context, c *conn, before map[string]uint64) (change, error) {
		keys := sel.resolve(before)
		set := make(map[string]uint64, len(keys))
		var notes []string
		switch r.kind {
		case resetToEarliest:
			for _, k := range keys {
				set[k] = 0
			}
			notes = append(notes, fmt.Sprintf("reset %s to 0, the start of their streams (%s)", plural(len(keys), "key"), r.flag))
		case resetToLatest, resetShiftBy:
			heads, err := highestOf(ctx, c, keys)
			if err != nil {
				return change{}, err
			}
			for _, k := range keys {
				if r.kind == resetToLatest {
					set[k] = heads[k]
				} else {
					set[k] = shifted(before[k], r.shift, heads[k])
				}
			}
			if r.kind == resetToLatest {
				notes = append(notes, fmt.Sprintf("reset %s to the heads of their streams (%s)", plural(len(keys), "key"), r.flag))
			} else {
				notes = append(notes, fmt.Sprintf("reset %s by %d events, within 0 and the heads of their streams (%s)", plural(len(keys), "key"), r.shift, r.flag))
			}
			if n := countZero(keys, heads); n > 0 {
				notes = append(notes, fmt.Sprintf("note: %s no stream in the journal (no row at all): head 0", pluralHave(n)))
			}
		case resetToDatetime:
			at, err := writtenBefore(ctx, c, keys, r.at)
			if err != nil {
				return change{}, err
			}
			for _, k := range keys {
				set[k] = at[k]
			}
			notes = append(notes, fmt.Sprintf("reset %s to the highest sequence numbers written before %s (%s)",
				plural(len(keys), "key"), render.Time(r.at), r.flag))
		}
		if n := countMissing(keys, before); n > 0 {
			notes = append(notes, fmt.Sprintf("note: %s not in the outbox yet: %s added (+)", pluralKeysAre(n), itOrThey(n)))
		}
		return change{set: set, notes: notes}, nil
	}
}

// shifted is offset + n, within 0 and head.
func shifted(offset uint64, n int64, head uint64) uint64 {
	if n >= 0 {
		return min(satAdd(offset, uint64(n)), head)
	}
	back := uint64(-(n + 1)) + 1 // -n, also for math.MinInt64
	if back >= offset {
		return 0
	}
	return min(offset-back, head)
}

// writtenBefore returns, for each key, the highest sequence number of its
// stream written before at, through the journal's batched read. A key that
// cannot be a persistence id has no stream: 0.
func writtenBefore(ctx context.Context, c *conn, keys []string, at time.Time) (map[string]uint64, error) {
	pids := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return journal.ValidatePersistenceID(k) != nil })
	out, err := c.j.HighestSequenceNrsBefore(ctx, pids, at)
	if err != nil {
		return nil, fmt.Errorf("read the sequence numbers written before %s: %w", render.Time(at), err)
	}
	return out, nil
}

func countZero(keys []string, heads map[string]uint64) int {
	n := 0
	for _, k := range keys {
		if heads[k] == 0 {
			n++
		}
	}
	return n
}

func countMissing(keys []string, before map[string]uint64) int {
	n := 0
	for _, k := range keys {
		if _, ok := before[k]; !ok {
			n++
		}
	}
	return n
}

func pluralHave(n int) string {
	if n == 1 {
		return "1 key has"
	}
	return fmt.Sprintf("%d keys have", n)
}

func pluralKeysAre(n int) string {
	if n == 1 {
		return "1 key named is"
	}
	return fmt.Sprintf("%d keys named are", n)
}

func itOrThey(n int) string {
	if n == 1 {
		return "it is"
	}
	return "they are"
}

func newRewindCmd(a *app) *cobra.Command {
	var f rewindFlags
	cmd := &cobra.Command{
		Use:   "rewind OUTBOX (KEY=N... | RESET-MODE (KEY... | --keys-from FILE | --all-keys))",
		Short: "Set keys of an outbox to offsets, or reset them as Kafka's consumer groups are (dry run unless --apply)",
		Long: `Set keys (source persistence ids) of OUTBOX to offsets, the last sequence
number counted as published: the relay resumes each stream at offset+1. An
offset may be lower than the current one (publish again from an earlier
point) or higher (skip events). Other keys keep their offsets.

Either give KEY=N pairs (the key is everything before the last "="; N is a
whole number from 0 to 18446744073709551615, the snapshot format's 64-bit
range), or one reset mode, as kafka-consumer-groups --reset-offsets has them:

  --to-datetime T   each key to the highest sequence number of its stream
                    written before T (written_at < T: an event written at T
                    exactly is published again), 0 when none. T is RFC 3339
                    or the forms Kafka's tool takes: 2026-12-01T09:00:00Z,
                    2026-12-01T09:00:00.000+01:00, 2026-12-01T09:00:00+0100,
                    2026-12-01T09:00 or 2026-12-01 (a missing zone is UTC,
                    as Kafka reads it; a missing time is midnight).
  --by-duration D   the same with T = now - D, now from this machine's clock:
                    a Go duration (90m, 1h30m, 36h) or ISO 8601 as Kafka
                    takes it (PT90M, P1DT12H, PT0.5S).
  --shift-by N      each key by N events, N < 0 back, kept within 0 and the
                    head of its stream.
  --to-earliest     each key to 0: its whole stream again.
  --to-latest       each key to the head of its stream: skip what waits.

A reset applies to the keys named (KEY..., taken literally, "=" included),
those of --keys-from FILE (one key per line, - for standard input; empty
lines are skipped, a trailing \r dropped), or --all-keys (every key of the
outbox). A key named that the outbox does not have yet is added.

Streams are read as the journal holds them now. The head of a stream is
its highest sequence number, deleted rows included (the row DeleteTo keeps
at its top). Rows DeleteTo removed are not known: a rewind into a removed
range lands at the highest row left before T, or 0, and the relay, which
skips deleted events, publishes the same events either way. A key whose
stream has no row at all (never written, or removed outside the library)
has head 0: every mode sets it to 0. --to-datetime reads the streams in one
round trip per 10 000 keys, each stream from its newest row down to the
first written before T, so its cost follows the events published again.

Without --apply this prints the change and writes nothing: the reset, the
first --limit changed keys with their move in events, how many keys move
back and forward and by how many events in all. With --apply it writes one
snapshot with the offsets after the change (store.Replace), as a writer of
its own that prunes nothing: every snapshot the relay kept stays, and the
relay's own retention prunes at its next write. A relay running on the
outbox is fenced at its next save and must reopen the outbox, which loads
this change. Use --if-seq with the seq a dry run printed to refuse if
anything wrote in between.`,
		Example: `  offsetstore rewind orders-to-kafka order-42=0 order-43=17
  offsetstore rewind orders-to-kafka order-42=0 --apply --if-seq 1234
  offsetstore rewind orders-to-kafka --all-keys --to-datetime 2026-12-01T09:00:00
  offsetstore rewind orders-to-kafka --all-keys --by-duration 2h --apply --if-seq 1234
  offsetstore rewind orders-to-kafka order-42 order-43 --shift-by -10
  offsetstore rewind orders-to-kafka --keys-from keys.txt --to-earliest`,
		Args: minArgs(1, "OUTBOX, then KEY=N pairs or a reset mode and its keys"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			outbox, rest := args[0], args[1:]
			if err := checkOutbox(outbox); err != nil {
				return err
			}
			if f.limit < 0 {
				return usageErrorf("--limit %d: want 0 (all) or more", f.limit)
			}
			r, err := f.resetOf(cmd, time.Now())
			if err != nil {
				return err
			}
			if r == nil {
				if f.allKeys || f.keysFrom != "" {
					return usageErrorf("--all-keys and --keys-from choose the keys of a reset mode: add one of --%s", strings.Join(modeFlags, ", --"))
				}
				if len(rest) == 0 {
					return usageErrorf("rewind takes KEY=N pairs, or a reset mode (--%s) and its keys", strings.Join(modeFlags, ", --"))
				}
				set, err := parseAssignments(rest)
				if err != nil {
					return err
				}
				return a.writeChange(ctx, cmd, &f.writeFlags, outbox, fixed(change{set: set}))
			}
			sel, err := a.selectKeys(&f, rest)
			if err != nil {
				return err
			}
			return a.writeChange(ctx, cmd, &f.writeFlags, outbox, r.plan(sel))
		}),
	}
	f.register(cmd, true)
	fs := cmd.Flags()
	fs.IntVar(&f.limit, "limit", defaultDiffRows, "print only the first N changed keys of the diff (0: all)")
	fs.StringVar(&f.toDatetime, "to-datetime", "", "reset each key to the highest sequence number of its stream written before `T` (RFC 3339; no zone: UTC)")
	fs.StringVar(&f.byDuration, "by-duration", "", "reset as --to-datetime with T = now - `D` (90m, 1h30m, PT90M, P1DT12H)")
	fs.Int64Var(&f.shiftBy, "shift-by", 0, "move each key by `N` events (negative: back), within 0 and the head of its stream")
	fs.BoolVar(&f.toEarliest, "to-earliest", false, "reset each key to 0")
	fs.BoolVar(&f.toLatest, "to-latest", false, "reset each key to the head of its stream")
	fs.StringVar(&f.keysFrom, "keys-from", "", "reset the keys of `FILE`, one per line (- for standard input)")
	fs.BoolVar(&f.allKeys, "all-keys", false, "reset every key of the outbox")
	return cmd
}
