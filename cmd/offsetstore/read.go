package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// snapshot is the newest snapshot row of an outbox, decoded.
type snapshot struct {
	outbox  string
	ev      journal.Event
	offsets map[string]uint64
}

// snapshotDoc is the JSON of show --json and export, and one of the two
// forms import reads.
type snapshotDoc struct {
	Outbox        string            `json:"outbox"`
	PersistenceID string            `json:"persistence_id"`
	Seq           uint64            `json:"seq"`
	Writer        string            `json:"writer"`
	WrittenAt     string            `json:"written_at"`
	Offsets       map[string]uint64 `json:"offsets"`
}

func (s *snapshot) doc() snapshotDoc {
	return snapshotDoc{
		Outbox:        s.outbox,
		PersistenceID: s.ev.PersistenceID,
		Seq:           s.ev.SequenceNr,
		Writer:        s.ev.WriterUUID,
		WrittenAt:     formatTime(s.ev.WrittenAt),
		Offsets:       s.offsets,
	}
}

// openSnapshot connects and reads the newest snapshot of outbox. The caller
// closes the connection; on error it is already closed.
func (a *app) openSnapshot(ctx context.Context, jf *journalFlags, outbox string) (*conn, *snapshot, error) {
	c, err := a.open(ctx, jf)
	if err != nil {
		return nil, nil, err
	}
	s, err := readSnapshot(ctx, c, outbox)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

// readSnapshot reads the newest snapshot of outbox in one round trip
// (journal Last).
func readSnapshot(ctx context.Context, c *conn, outbox string) (*snapshot, error) {
	pid := store.PersistenceID(outbox)
	ev, ok, err := c.j.Last(ctx, pid)
	if err != nil {
		return nil, fmt.Errorf("read outbox %q: %w", outbox, err)
	}
	if !ok {
		return nil, notFound(ctx, c, outbox)
	}
	m, err := decodeSnapshot(ev)
	if err != nil {
		return nil, fmt.Errorf("outbox %q: snapshot %d: %w", outbox, ev.SequenceNr, err)
	}
	return &snapshot{outbox: outbox, ev: ev, offsets: m}, nil
}

func decodeSnapshot(ev journal.Event) (map[string]uint64, error) {
	if ev.Manifest != codec.Manifest {
		return nil, fmt.Errorf("unknown manifest %q (want %q)", ev.Manifest, codec.Manifest)
	}
	return codec.Decode(ev.Payload)
}

// notFound explains why outbox has no snapshot to read.
func notFound(ctx context.Context, c *conn, outbox string) error {
	pid := store.PersistenceID(outbox)
	if hi, err := c.j.HighestSequenceNr(ctx, pid); err == nil && hi > 0 {
		return fmt.Errorf("outbox %q has no snapshot left: every row up to %d under %q is deleted", outbox, hi, pid)
	}
	return fmt.Errorf("outbox %q not found: no snapshot under persistence id %q in table %s", outbox, pid, c.table.Sanitize())
}

// writeFields writes name/value lines with the values aligned.
func writeFields(w io.Writer, fields [][2]string) error {
	width := 0
	for _, f := range fields {
		width = max(width, len(f[0]))
	}
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%-*s  %s\n", width, f[0], f[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeShow writes the snapshot's header and its offsets sorted by key,
// the first limit of them when limit > 0.
func writeShow(w io.Writer, s *snapshot, limit int) error {
	if err := writeFields(w, [][2]string{
		{"outbox", displayKey(s.outbox)},
		{"persistence_id", displayKey(s.ev.PersistenceID)},
		{"seq", u64(s.ev.SequenceNr)},
		{"writer", displayKey(s.ev.WriterUUID)},
		{"written_at", formatTime(s.ev.WrittenAt)},
		{"keys", fmt.Sprint(len(s.offsets))},
	}); err != nil {
		return err
	}
	if len(s.offsets) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(s.offsets))
	t := &table{header: []string{"KEY", "OFFSET"}, right: []bool{false, true}}
	for i, k := range keys {
		if limit > 0 && i == limit {
			break
		}
		t.add(displayKey(k), u64(s.offsets[k]))
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	if err := t.write(w); err != nil {
		return err
	}
	return writeMore(w, len(keys)-len(t.rows))
}

func writeMore(w io.Writer, more int) error {
	if more <= 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "... and %d more keys\n", more)
	return err
}

func newShowCmd(a *app) *cobra.Command {
	var (
		jf     journalFlags
		asJSON bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "show OUTBOX",
		Short: "Show the current offsets of an outbox",
		Long: `Show the newest snapshot of OUTBOX: its sequence number, writer and time,
and the offsets sorted by key (the source persistence id and the last
sequence number published from it).

With --json it prints the document export prints: {"outbox", "persistence_id",
"seq", "writer", "written_at", "offsets": {key: offset}}.`,
		Example: `  offsetstore show orders-to-kafka
  offsetstore show orders-to-kafka --json | jq '.offsets["order-42"]'`,
		Args: exactArgs("OUTBOX"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if err := checkOutbox(args[0]); err != nil {
				return err
			}
			if limit < 0 {
				return usageErrorf("--limit %d: want 0 (all) or more", limit)
			}
			c, s, err := a.openSnapshot(ctx, &jf, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			if asJSON {
				return writeJSON(a.stdout, s.doc())
			}
			return writeShow(a.stdout, s, limit)
		}),
	}
	jf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the format of export) instead of a table")
	cmd.Flags().IntVar(&limit, "limit", 0, "print only the first N keys of the table (0: all)")
	return cmd
}

func newExportCmd(a *app) *cobra.Command {
	var jf journalFlags
	cmd := &cobra.Command{
		Use:   "export OUTBOX",
		Short: "Print the current offsets of an outbox as JSON for import",
		Long: `Print the newest snapshot of OUTBOX as JSON, the document import reads:

  {"outbox": "...", "persistence_id": "...", "seq": N, "writer": "...",
   "written_at": "...", "offsets": {"key": offset, ...}}

Keys are sorted; offsets are exact 64-bit integers.`,
		Example: `  offsetstore export orders-to-kafka > orders.json
  offsetstore import orders-to-kafka orders.json --replace --apply`,
		Args: exactArgs("OUTBOX"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if err := checkOutbox(args[0]); err != nil {
				return err
			}
			c, s, err := a.openSnapshot(ctx, &jf, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			return writeJSON(a.stdout, s.doc())
		}),
	}
	jf.register(cmd.Flags())
	return cmd
}

// historyRow is one retained snapshot row.
type historyRow struct {
	Seq       uint64 `json:"seq"`
	WrittenAt string `json:"written_at"`
	Writer    string `json:"writer"`
	Keys      *int   `json:"keys"` // null when the payload cannot be decoded
	Bytes     int    `json:"bytes"`
	Error     string `json:"error,omitempty"`
}

func newHistoryCmd(a *app) *cobra.Command {
	var (
		jf     journalFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "history OUTBOX",
		Short: "List the retained snapshot rows of an outbox",
		Long: `List the snapshot rows of OUTBOX still in the journal, oldest first: sequence
number, time written, writer, number of keys and payload size. The store
keeps the newest few (store.WithRetention) and prunes older ones, so this is
a short list; a change of writer shows where a relay restarted or an
operator wrote. A row that cannot be decoded is listed with KEYS "-" and a
warning on standard error.`,
		Example: `  offsetstore history orders-to-kafka`,
		Args:    exactArgs("OUTBOX"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			outbox := args[0]
			if err := checkOutbox(outbox); err != nil {
				return err
			}
			c, err := a.open(ctx, &jf)
			if err != nil {
				return err
			}
			defer c.Close()
			var rows []historyRow
			pid := store.PersistenceID(outbox)
			for ev, err := range c.j.Replay(ctx, pid, 1, math.MaxUint64, math.MaxUint64) {
				if err != nil {
					return fmt.Errorf("read history of outbox %q: %w", outbox, err)
				}
				r := historyRow{Seq: ev.SequenceNr, WrittenAt: formatTime(ev.WrittenAt), Writer: ev.WriterUUID, Bytes: len(ev.Payload)}
				if m, err := decodeSnapshot(ev); err != nil {
					r.Error = err.Error()
					fmt.Fprintf(a.stderr, "warning: snapshot %d cannot be decoded: %v\n", ev.SequenceNr, err)
				} else {
					n := len(m)
					r.Keys = &n
				}
				rows = append(rows, r)
			}
			if len(rows) == 0 {
				return notFound(ctx, c, outbox)
			}
			if asJSON {
				return writeJSON(a.stdout, struct {
					Outbox        string       `json:"outbox"`
					PersistenceID string       `json:"persistence_id"`
					Snapshots     []historyRow `json:"snapshots"`
				}{outbox, pid, rows})
			}
			t := &table{header: []string{"SEQ", "WRITTEN_AT", "WRITER", "KEYS", "BYTES"}, right: []bool{true, false, false, true, true}}
			for _, r := range rows {
				keys := "-"
				if r.Keys != nil {
					keys = fmt.Sprint(*r.Keys)
				}
				t.add(u64(r.Seq), r.WrittenAt, displayKey(r.Writer), keys, fmt.Sprint(r.Bytes))
			}
			return t.write(a.stdout)
		}),
	}
	jf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// lagRow is one key of lag.
type lagRow struct {
	Key     string `json:"key"`
	Offset  uint64 `json:"offset"`
	Highest uint64 `json:"highest"`
	Lag     int64  `json:"lag"` // negative when the offset is past the stream's end
}

// lagChunk bounds the keys sent in one statement.
const lagChunk = 10000

// highestOf returns the journal's highest sequence number (deleted rows
// included, as journal.HighestSequenceNr) of every key, in one statement
// per lagChunk keys: a probe of the primary key index per key, without a
// round trip per key.
func highestOf(ctx context.Context, c *conn, keys []string) (map[string]uint64, error) {
	q := `SELECT k.pid, coalesce(h.nr, 0)
  FROM unnest($1::text[]) AS k(pid)
 CROSS JOIN LATERAL (SELECT max(sequence_nr) AS nr FROM ` + c.table.Sanitize() + ` WHERE persistence_id = k.pid) AS h`
	out := make(map[string]uint64, len(keys))
	// A key with a NUL byte (the codec allows one, the store does not)
	// cannot be a persistence id in PostgreSQL: its highest is 0.
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return strings.IndexByte(k, 0) >= 0 })
	for chunk := range slices.Chunk(keys, lagChunk) {
		rows, err := c.pool.Query(ctx, q, chunk)
		if err != nil {
			return nil, fmt.Errorf("read highest sequence numbers: %w", err)
		}
		for rows.Next() {
			var (
				pid string
				nr  int64
			)
			if err := rows.Scan(&pid, &nr); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read highest sequence numbers: %w", err)
			}
			out[pid] = uint64(nr)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read highest sequence numbers: %w", err)
		}
	}
	return out, nil
}

// lagOf is highest - offset, saturated to the int64 range.
func lagOf(highest, offset uint64) int64 {
	if highest >= offset {
		return int64(min(highest-offset, math.MaxInt64))
	}
	return -int64(min(offset-highest, math.MaxInt64))
}

func newLagCmd(a *app) *cobra.Command {
	var (
		jf     journalFlags
		asJSON bool
		top    int
	)
	cmd := &cobra.Command{
		Use:   "lag OUTBOX",
		Short: "Show how far each key of an outbox is behind its source stream",
		Long: `For each key of OUTBOX's newest snapshot, read the source stream's highest
sequence number in the journal and print highest - offset, largest first
(ties by key). A negative lag is an offset past the stream's end (a rewind
too far forward, or a stream deleted and recreated). The highest sequence
numbers of all keys are read with one statement per 10 000 keys.

The summary counts every key, also with --top.`,
		Example: `  offsetstore lag orders-to-kafka --top 20
  offsetstore lag orders-to-kafka --json | jq '.total_lag'`,
		Args: exactArgs("OUTBOX"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if err := checkOutbox(args[0]); err != nil {
				return err
			}
			if top < 0 {
				return usageErrorf("--top %d: want 0 (all) or more", top)
			}
			c, s, err := a.openSnapshot(ctx, &jf, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			keys := slices.Sorted(maps.Keys(s.offsets))
			highest, err := highestOf(ctx, c, keys)
			if err != nil {
				return err
			}
			rows := make([]lagRow, 0, len(keys))
			var total uint64
			behind, ahead := 0, 0
			for _, k := range keys {
				r := lagRow{Key: k, Offset: s.offsets[k], Highest: highest[k]}
				r.Lag = lagOf(r.Highest, r.Offset)
				switch {
				case r.Lag > 0:
					behind++
					total += uint64(r.Lag)
				case r.Lag < 0:
					ahead++
				}
				rows = append(rows, r)
			}
			slices.SortStableFunc(rows, func(x, y lagRow) int { return cmp.Compare(y.Lag, x.Lag) })
			shown := rows
			if top > 0 && top < len(rows) {
				shown = rows[:top]
			}
			if asJSON {
				return writeJSON(a.stdout, struct {
					Outbox   string   `json:"outbox"`
					Seq      uint64   `json:"seq"`
					Keys     int      `json:"keys"`
					Behind   int      `json:"behind"`
					Ahead    int      `json:"ahead"`
					TotalLag uint64   `json:"total_lag"`
					Lag      []lagRow `json:"lag"`
				}{s.outbox, s.ev.SequenceNr, len(rows), behind, ahead, total, shown})
			}
			if err := writeFields(a.stdout, [][2]string{
				{"outbox", displayKey(s.outbox)},
				{"seq", u64(s.ev.SequenceNr)},
				{"keys", fmt.Sprint(len(rows))},
				{"behind", fmt.Sprint(behind)},
				{"ahead", fmt.Sprint(ahead)},
				{"total_lag", u64(total)},
			}); err != nil {
				return err
			}
			if len(rows) == 0 {
				return nil
			}
			t := &table{header: []string{"KEY", "OFFSET", "HIGHEST", "LAG"}, right: []bool{false, true, true, true}}
			for _, r := range shown {
				t.add(displayKey(r.Key), u64(r.Offset), u64(r.Highest), fmt.Sprint(r.Lag))
			}
			if _, err := io.WriteString(a.stdout, "\n"); err != nil {
				return err
			}
			if err := t.write(a.stdout); err != nil {
				return err
			}
			return writeMore(a.stdout, len(rows)-len(shown))
		}),
	}
	jf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.Flags().IntVar(&top, "top", 0, "print only the N keys with the largest lag (0: all)")
	return cmd
}
