package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/cmd/internal/render"
	"github.com/outboxkit/offsetstore/store"
)

// maxFileSize bounds what import reads.
const maxFileSize = 256 << 20

// writeFlags are the flags of the commands that write a snapshot.
type writeFlags struct {
	journalFlags
	apply  bool
	ifSeq  uint64
	create bool
	limit  int // rows of the diff; 0: all
}

func (f *writeFlags) register(cmd *cobra.Command, canCreate bool) {
	fs := cmd.Flags()
	f.journalFlags.register(fs)
	fs.BoolVar(&f.apply, "apply", false, "write the change; without it, only print what would change")
	fs.Uint64Var(&f.ifSeq, "if-seq", 0, "refuse (exit status 3) unless the outbox's newest snapshot is still seq `S`, as shown by show or a dry run")
	if canCreate {
		fs.BoolVar(&f.create, "create", false, "allow writing the first snapshot of an outbox that has none")
	}
}

// change is what a write command asks for: keys to set, then keys to
// drop; with replace, every key not set is dropped too. notes are lines
// printed after the diff's header, saying how the change was made.
type change struct {
	set     map[string]uint64
	forget  []string
	replace bool
	notes   []string
}

// resolve returns the offsets after the change and the keys it drops.
func (c change) resolve(before map[string]uint64) (after map[string]uint64, drop []string) {
	after = maps.Clone(before)
	maps.Copy(after, c.set)
	drop = slices.Clone(c.forget)
	if c.replace {
		for k := range before {
			if _, ok := c.set[k]; !ok {
				drop = append(drop, k)
			}
		}
		slices.Sort(drop)
	}
	for _, k := range drop {
		delete(after, k)
	}
	return after, drop
}

// planFunc makes the change of a write from the offsets it was opened
// at, reading the journal through c if it needs to.
type planFunc func(ctx context.Context, c *conn, before map[string]uint64) (change, error)

// fixed is the plan of a change known from the command line alone.
func fixed(ch change) planFunc {
	return func(context.Context, *conn, map[string]uint64) (change, error) { return ch, nil }
}

// writeChange opens the outbox as a writer of its own that never prunes,
// prints the change as a diff of offsets and, with --apply, writes it as
// one fenced snapshot (store.Replace with the offsets after the change).
// --if-seq is checked right after the open, and the write at seq+1 is
// refused if another writer takes it first.
func (a *app) writeChange(ctx context.Context, cmd *cobra.Command, f *writeFlags, outbox string, plan planFunc) error {
	c, err := a.open(ctx, &f.journalFlags)
	if err != nil {
		return err
	}
	defer c.Close()
	// Without pruning: the relay's own retention decides which of its
	// snapshots to keep, at its next write.
	s, err := store.Open(ctx, c.j, outbox, store.WithWriterID(writerID()), store.WithoutPruning())
	if err != nil {
		return fmt.Errorf("open outbox %q: %w", outbox, err)
	}
	seq := s.SequenceNr()
	if seq == 0 && !f.create {
		err := notFound(ctx, c, outbox)
		if cmd.Flags().Lookup("create") != nil {
			err = fmt.Errorf("%w; pass --create to write its first snapshot", err)
		}
		return err
	}
	if cmd.Flags().Changed("if-seq") && seq != f.ifSeq {
		return conflictErrorf("outbox %q is at snapshot %d, not %d (--if-seq): it moved since it was read; nothing written", outbox, seq, f.ifSeq)
	}
	before, err := s.Load(ctx)
	if err != nil {
		return err
	}
	ch, err := plan(ctx, c, before)
	if err != nil {
		return err
	}
	for _, k := range ch.forget {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(a.stderr, "note: key %s is not in outbox %q; nothing to forget\n", render.Key(k), outbox)
		}
	}
	after, _ := ch.resolve(before)
	if err := writeDiff(a.stdout, outbox, seq, before, after, ch.notes, f.limit); err != nil {
		return err
	}
	if maps.Equal(before, after) {
		_, err := fmt.Fprintln(a.stdout, "no change; nothing to write")
		return err
	}
	if !f.apply {
		_, err := fmt.Fprintf(a.stdout, "dry run: nothing written. To write this as snapshot %d, add --apply (and --if-seq %d to refuse if the outbox moves first).\n", seq+1, seq)
		return err
	}

	// One snapshot, whatever the change: store.Replace with the offsets
	// shown as "after".
	if err := s.Replace(ctx, after); err != nil {
		if errors.Is(err, store.ErrFenced) {
			return &exitError{code: exitConflict, err: fmt.Errorf("another writer wrote snapshot %d first; nothing written: %w", seq+1, err)}
		}
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "wrote snapshot %d as writer %s\n", s.SequenceNr(), s.WriterID())
	return err
}

// writeDiff prints the header, the notes and the keys whose offsets
// differ: ~ changed, + added, - removed, sorted by key, the first limit of
// them when limit > 0, each with its move in events (after - before; a key
// absent counts as 0, where a relay starts a stream). A summary counts the
// keys and the events the relay publishes again (keys moved back) or skips
// (keys moved forward).
func writeDiff(w io.Writer, outbox string, seq uint64, before, after map[string]uint64, notes []string, limit int) error {
	at := fmt.Sprintf("snapshot %d", seq)
	if seq == 0 {
		at = "no snapshot yet"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "outbox %q at %s (%d keys)\n", outbox, at, len(before))
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	union := maps.Clone(before)
	maps.Copy(union, after)
	keys := slices.Sorted(maps.Keys(union))
	t := &render.Table{Header: []string{"", "KEY", "BEFORE", "AFTER", "MOVE"}, Right: []bool{false, false, true, true, true}}
	var changed, added, removed, rows int
	var m moves
	for _, k := range keys {
		bv, inB := before[k]
		av, inA := after[k]
		var mark, bs, as string
		switch {
		case inB && inA && bv != av:
			changed++
			mark, bs, as = "~", render.U64(bv), render.U64(av)
		case !inB && inA:
			added++
			mark, bs, as = "+", "-", render.U64(av)
		case inB && !inA:
			removed++
			mark, bs, as = "-", render.U64(bv), "-"
		default:
			continue
		}
		m.add(bv, av)
		if rows++; limit <= 0 || rows <= limit {
			t.Add(mark, render.Key(k), bs, as, move(bv, av))
		}
	}
	if rows == 0 {
		return nil
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	if err := t.Write(w); err != nil {
		return err
	}
	if err := render.More(w, rows-len(t.Rows)); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d changed, %d added, %d removed\n%s\n", changed, added, removed, m)
	return err
}

// moves sums how far keys move, in events.
type moves struct {
	backKeys, forwardKeys int
	back, forward         uint64 // saturated at math.MaxUint64
}

func (m *moves) add(before, after uint64) {
	switch {
	case after < before:
		m.backKeys++
		m.back = satAdd(m.back, before-after)
	case after > before:
		m.forwardKeys++
		m.forward = satAdd(m.forward, after-before)
	}
}

func (m moves) String() string {
	return fmt.Sprintf("back: %s by %s in all (the relay publishes their live events again); forward: %s by %s (skipped)",
		plural(m.backKeys, "key"), plural64(m.back, "event"), plural(m.forwardKeys, "key"), plural64(m.forward, "event"))
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// move is after - before, signed: "+3", "-12", "0".
func move(before, after uint64) string {
	switch {
	case after > before:
		return "+" + render.U64(after-before)
	case after < before:
		return "-" + render.U64(before-after)
	}
	return "0"
}

func plural(n int, noun string) string { return plural64(uint64(n), noun) }

func plural64(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return render.U64(n) + " " + noun + "s"
}

// parseAssignments reads KEY=N arguments. The key is everything before
// the last "=", so that a key may itself contain one.
func parseAssignments(args []string) (map[string]uint64, error) {
	set := make(map[string]uint64, len(args))
	for _, arg := range args {
		i := strings.LastIndexByte(arg, '=')
		if i < 0 {
			return nil, usageErrorf("argument %.64q: want KEY=N", arg)
		}
		key, num := arg[:i], arg[i+1:]
		if err := store.ValidateKey(key); err != nil {
			return nil, usageErrorf("argument %.64q: %v", arg, err)
		}
		v, err := parseOffset(num)
		if err != nil {
			return nil, usageErrorf("argument %.64q: offset %q %v", arg, num, err)
		}
		if _, dup := set[key]; dup {
			return nil, usageErrorf("key %.64q is given twice", key)
		}
		set[key] = v
	}
	return set, nil
}

func newForgetCmd(a *app) *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "forget OUTBOX KEY...",
		Short: "Drop keys from an outbox (dry run unless --apply)",
		Long: `Drop each KEY from OUTBOX's offsets, so that the relay follows the stream from
the start again if it reappears, and the snapshot stops carrying a stream
that is gone. Keys not in the outbox are noted and ignored.

Without --apply this prints the change and writes nothing. With --apply it
writes one snapshot without the keys (store.Replace), fenced like any
writer, as a writer that prunes nothing: the relay's own retention prunes
at its next write. See rewind.`,
		Example: `  offsetstore forget orders-to-kafka order-41 order-40
  offsetstore forget orders-to-kafka order-41 --apply --if-seq 1234`,
		Args: minArgs(2, "OUTBOX and at least one KEY"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			if err := checkOutbox(args[0]); err != nil {
				return err
			}
			var keys []string
			for _, k := range args[1:] {
				if err := store.ValidateKey(k); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
			return a.writeChange(ctx, cmd, &f, args[0], fixed(change{forget: keys}))
		}),
	}
	f.register(cmd, false)
	return cmd
}

func newImportCmd(a *app) *cobra.Command {
	var (
		f       writeFlags
		replace bool
	)
	cmd := &cobra.Command{
		Use:   "import OUTBOX FILE",
		Short: "Set the offsets of an outbox from a JSON file (dry run unless --apply)",
		Long: `Set OUTBOX's offsets to those of FILE (- reads standard input): the document
export and show --json print, or a bare object {"key": offset, ...}. Each key
of the file is set to its offset, lower ones included. Keys of the outbox
that are not in the file keep their offsets, unless --replace is given: then
they are dropped, so that the outbox ends up with exactly the file's offsets.

The file is read strictly: valid UTF-8, one object, no duplicate names, no
\u escape that is not valid UTF-16 (a lone surrogate), no unknown fields in
a document, offsets whole numbers from 0 to 18446744073709551615 (the
snapshot format's 64-bit range, so that every export imports). The file's
seq and outbox are informational (a different outbox is noted); use
--if-seq to make the write conditional.

Without --apply this prints the change and writes nothing. With --apply it
writes one snapshot with the offsets after the change (store.Replace), with
or without --replace, as a writer that prunes nothing: the relay's own
retention prunes at its next write. Writes are fenced like any writer's;
see rewind.`,
		Example: `  offsetstore export orders-to-kafka > before.json
  offsetstore import orders-to-kafka before.json --replace
  offsetstore import orders-to-kafka before.json --replace --apply --if-seq 1240
  echo '{"order-42": 0}' | offsetstore import orders-to-kafka - --apply`,
		Args: exactArgs("OUTBOX", "FILE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			outbox, name := args[0], args[1]
			if err := checkOutbox(outbox); err != nil {
				return err
			}
			data, err := a.readFile(name)
			if err != nil {
				return err
			}
			file, err := parseOffsetsFile(data)
			if err != nil {
				return usageErrorf("%s: %v", name, err)
			}
			if file.outbox != "" && file.outbox != outbox {
				fmt.Fprintf(a.stderr, "note: %s was exported from outbox %q; importing into %q\n", name, file.outbox, outbox)
			}
			return a.writeChange(ctx, cmd, &f, outbox, fixed(change{set: file.offsets, replace: replace}))
		}),
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&replace, "replace", false, "also drop the outbox's keys that are not in the file")
	return cmd
}

func (a *app) readFile(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = a.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d MiB", name, maxFileSize>>20)
	}
	return data, nil
}
