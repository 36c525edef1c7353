package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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
// drop; with replace, every key not set is dropped too.
type change struct {
	set     map[string]uint64
	forget  []string
	replace bool
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

// writeChange opens the outbox as a writer of its own that never prunes,
// prints the change as a diff of offsets and, with --apply, writes it as
// one fenced snapshot (store.Replace with the offsets after the change).
// --if-seq is checked right after the open, and the write at seq+1 is
// refused if another writer takes it first.
func (a *app) writeChange(ctx context.Context, cmd *cobra.Command, f *writeFlags, outbox string, ch change) error {
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
	for _, k := range ch.forget {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(a.stderr, "note: key %s is not in outbox %q; nothing to forget\n", render.Key(k), outbox)
		}
	}
	after, _ := ch.resolve(before)
	if err := writeDiff(a.stdout, outbox, seq, before, after); err != nil {
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

// writeDiff prints the keys whose offsets differ: ~ changed, + added,
// - removed, sorted by key.
func writeDiff(w io.Writer, outbox string, seq uint64, before, after map[string]uint64) error {
	at := fmt.Sprintf("snapshot %d", seq)
	if seq == 0 {
		at = "no snapshot yet"
	}
	if _, err := fmt.Fprintf(w, "outbox %q at %s (%d keys)\n", outbox, at, len(before)); err != nil {
		return err
	}
	union := maps.Clone(before)
	maps.Copy(union, after)
	keys := slices.Sorted(maps.Keys(union))
	t := &render.Table{Header: []string{"", "KEY", "BEFORE", "AFTER"}, Right: []bool{false, false, true, true}}
	var changed, added, removed int
	for _, k := range keys {
		b, inB := before[k]
		v, inA := after[k]
		switch {
		case inB && inA && b != v:
			changed++
			t.Add("~", render.Key(k), render.U64(b), render.U64(v))
		case !inB && inA:
			added++
			t.Add("+", render.Key(k), "-", render.U64(v))
		case inB && !inA:
			removed++
			t.Add("-", render.Key(k), render.U64(b), "-")
		}
	}
	if len(t.Rows) == 0 {
		return nil
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	if err := t.Write(w); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d changed, %d added, %d removed\n", changed, added, removed)
	return err
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

func newRewindCmd(a *app) *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "rewind OUTBOX KEY=N...",
		Short: "Set keys of an outbox to offsets, lower ones included (dry run unless --apply)",
		Long: `Set each KEY (a source persistence id) of OUTBOX to offset N, the last sequence
number counted as published: the relay resumes the stream at N+1. N may be
lower than the current offset (re-publish from an earlier point) or higher
(skip events). Other keys keep their offsets. The key is everything before the
last "=".

N is a whole number from 0 to 18446744073709551615 (the snapshot format's
64-bit range).

Without --apply this prints the change and writes nothing. With --apply it
writes one snapshot with the offsets after the change (store.Replace), as a
writer of its own that prunes nothing: every snapshot the relay kept stays,
and the relay's own retention prunes at its next write. A relay running on
the outbox is fenced at its next save and must reopen the outbox, which
loads this change. Use --if-seq with the seq a dry run printed to refuse if
anything wrote in between.`,
		Example: `  offsetstore rewind orders-to-kafka order-42=0 order-43=17
  offsetstore rewind orders-to-kafka order-42=0 --apply --if-seq 1234`,
		Args: minArgs(2, "OUTBOX and at least one KEY=N"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			if err := checkOutbox(args[0]); err != nil {
				return err
			}
			set, err := parseAssignments(args[1:])
			if err != nil {
				return err
			}
			return a.writeChange(ctx, cmd, &f, args[0], change{set: set})
		}),
	}
	f.register(cmd, true)
	return cmd
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
			return a.writeChange(ctx, cmd, &f, args[0], change{forget: keys})
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
			return a.writeChange(ctx, cmd, &f, outbox, change{set: file.offsets, replace: replace})
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
