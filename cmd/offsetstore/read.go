package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/cmd/internal/render"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

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

func docOf(s *render.Snapshot) snapshotDoc {
	return snapshotDoc{
		Outbox:        s.Outbox,
		PersistenceID: s.Event.PersistenceID,
		Seq:           s.Event.SequenceNr,
		Writer:        s.Event.WriterUUID,
		WrittenAt:     render.Time(s.Event.WrittenAt),
		Offsets:       s.Offsets,
	}
}

// openSnapshot connects and reads the newest snapshot of outbox. The caller
// closes the connection; on error it is already closed.
func (a *app) openSnapshot(ctx context.Context, jf *journalFlags, outbox string) (*conn, *render.Snapshot, error) {
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

// readSnapshot reads the current offsets of outbox as a relay's store
// loads them, in one round trip: the newest full snapshot and, in
// incremental mode, the deltas above it. The store is only read.
func readSnapshot(ctx context.Context, c *conn, outbox string) (*render.Snapshot, error) {
	s, err := store.Open(ctx, c.j, outbox, store.WithoutPruning())
	if err != nil {
		return nil, fmt.Errorf("read outbox %q: %w", outbox, err)
	}
	info := s.Info()
	if info.WrittenAt.IsZero() { // no live snapshot row
		return nil, notFound(ctx, c, outbox)
	}
	m, err := s.Load(ctx)
	if err != nil {
		return nil, err
	}
	ev := journal.Event{PersistenceID: s.PersistenceID(), SequenceNr: info.SequenceNr, WriterUUID: info.Writer, WrittenAt: info.WrittenAt}
	return &render.Snapshot{Outbox: outbox, Event: ev, Offsets: m, Mode: info.Mode.String()}, nil
}

// notFound explains why outbox has no snapshot to read.
func notFound(ctx context.Context, c *conn, outbox string) error {
	pid := store.PersistenceID(outbox)
	if hi, err := c.j.HighestSequenceNr(ctx, pid); err == nil && hi > 0 {
		return fmt.Errorf("outbox %q has no snapshot left: every row up to %d under %q is deleted", outbox, hi, pid)
	}
	return fmt.Errorf("outbox %q not found: no snapshot under persistence id %q in table %s", outbox, pid, c.table.Sanitize())
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
				return render.JSON(a.stdout, docOf(s))
			}
			return render.Show(a.stdout, s, limit)
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
			return render.JSON(a.stdout, docOf(s))
		}),
	}
	jf.register(cmd.Flags())
	return cmd
}

// historyRow is one retained snapshot row.
type historyRow struct {
	Seq       uint64 `json:"seq"`
	Kind      string `json:"kind"` // full or delta
	WrittenAt string `json:"written_at"`
	Writer    string `json:"writer"`
	Keys      *int   `json:"keys"` // null when the payload cannot be decoded; a delta's: the keys it sets
	Removed   int    `json:"removed,omitempty"`
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
				r := historyRow{Seq: ev.SequenceNr, Kind: store.RowFull.String(), WrittenAt: render.Time(ev.WrittenAt), Writer: ev.WriterUUID, Bytes: len(ev.Payload)}
				if row, err := store.DecodeRow(ev); err != nil {
					r.Error = err.Error()
					fmt.Fprintf(a.stderr, "warning: snapshot %d cannot be decoded: %v\n", ev.SequenceNr, err)
				} else {
					n := len(row.Offsets)
					r.Kind, r.Keys, r.Removed = row.Kind.String(), &n, len(row.Removed)
				}
				rows = append(rows, r)
			}
			if len(rows) == 0 {
				return notFound(ctx, c, outbox)
			}
			if asJSON {
				return render.JSON(a.stdout, struct {
					Outbox        string       `json:"outbox"`
					PersistenceID string       `json:"persistence_id"`
					Snapshots     []historyRow `json:"snapshots"`
				}{outbox, pid, rows})
			}
			t := &render.Table{Header: []string{"SEQ", "KIND", "WRITTEN_AT", "WRITER", "KEYS", "BYTES"}, Right: []bool{true, false, false, false, true, true}}
			for _, r := range rows {
				keys := "-"
				switch {
				case r.Keys != nil && r.Removed > 0:
					keys = fmt.Sprintf("%d -%d", *r.Keys, r.Removed)
				case r.Keys != nil:
					keys = fmt.Sprint(*r.Keys)
				}
				t.Add(render.U64(r.Seq), r.Kind, r.WrittenAt, render.Key(r.Writer), keys, fmt.Sprint(r.Bytes))
			}
			return t.Write(a.stdout)
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
	Lag     int64  `json:"lag"`              // negative when the offset is past the stream's end
	Unseen  bool   `json:"unseen,omitempty"` // --all-streams: a stream the outbox has no key for
}

// offsetStreams is the prefix of the offset store's own persistence ids,
// which are no source streams.
var offsetStreams = store.PersistenceIDPrefix

// highestOf returns the journal's highest sequence number (deleted rows
// included, as journal.HighestSequenceNr) of every key, through the
// journal's batched read. A key that cannot be a persistence id (the codec
// allows a NUL byte, PostgreSQL text does not) has no stream: 0.
func highestOf(ctx context.Context, c *conn, keys []string) (map[string]uint64, error) {
	pids := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return journal.ValidatePersistenceID(k) != nil })
	out, err := c.j.HighestSequenceNrs(ctx, pids)
	if err != nil {
		return nil, fmt.Errorf("read highest sequence numbers: %w", err)
	}
	return out, nil
}

// unseenStreams returns the journal's source streams (the offset store's
// own excluded) that are not keys of offsets, in the journal's order.
func unseenStreams(ctx context.Context, c *conn, offsets map[string]uint64) ([]string, error) {
	var unseen []string
	for pid, err := range journal.AllPersistenceIDs(ctx, c.j, journal.ListOptions{ExcludePrefix: offsetStreams}) {
		if err != nil {
			return nil, fmt.Errorf("list the journal's streams: %w", err)
		}
		if _, ok := offsets[pid]; !ok {
			unseen = append(unseen, pid)
		}
	}
	return unseen, nil
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
		jf         journalFlags
		asJSON     bool
		top        int
		allStreams bool
	)
	cmd := &cobra.Command{
		Use:   "lag OUTBOX",
		Short: "Show how far each key of an outbox is behind its source stream",
		Long: `For each key of OUTBOX's newest snapshot, read the source stream's highest
sequence number in the journal and print highest - offset, largest first
(ties by key). A negative lag is an offset past the stream's end (a rewind
too far forward, or a stream deleted and recreated). The highest sequence
numbers of all keys are read in one round trip per batch of the journal's
(pgjournal.MaxHighestBatch keys).

With --all-streams, the journal's streams the outbox has no key for yet
(the relay has not seen them) are listed too, with offset 0 and the whole
stream as lag, and counted as unseen; the offset store's own outbox::…
streams are left out. Listing reads every persistence id of the journal
(by its primary key index), so it takes longer on a large journal.

The summary counts every key, also with --top.`,
		Example: `  offsetstore lag orders-to-kafka --top 20
  offsetstore lag orders-to-kafka --json | jq '.total_lag'
  offsetstore lag orders-to-kafka --all-streams`,
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
			keys := slices.Sorted(maps.Keys(s.Offsets))
			var unseen []string
			if allStreams {
				if unseen, err = unseenStreams(ctx, c, s.Offsets); err != nil {
					return err
				}
			}
			highest, err := highestOf(ctx, c, append(slices.Clone(keys), unseen...))
			if err != nil {
				return err
			}
			rows := make([]lagRow, 0, len(keys)+len(unseen))
			var total uint64
			behind, ahead := 0, 0
			for _, k := range append(keys, unseen...) {
				_, seen := s.Offsets[k]
				r := lagRow{Key: k, Offset: s.Offsets[k], Highest: highest[k], Unseen: !seen}
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
				return render.JSON(a.stdout, struct {
					Outbox   string   `json:"outbox"`
					Seq      uint64   `json:"seq"`
					Keys     int      `json:"keys"`
					Unseen   *int     `json:"unseen,omitempty"` // with --all-streams
					Behind   int      `json:"behind"`
					Ahead    int      `json:"ahead"`
					TotalLag uint64   `json:"total_lag"`
					Lag      []lagRow `json:"lag"`
				}{s.Outbox, s.Event.SequenceNr, len(keys), unseenCount(allStreams, unseen), behind, ahead, total, shown})
			}
			fields := [][2]string{
				{"outbox", render.Key(s.Outbox)},
				{"seq", render.U64(s.Event.SequenceNr)},
				{"keys", fmt.Sprint(len(keys))},
			}
			if allStreams {
				fields = append(fields, [2]string{"unseen", fmt.Sprint(len(unseen))})
			}
			fields = append(fields, [][2]string{
				{"behind", fmt.Sprint(behind)},
				{"ahead", fmt.Sprint(ahead)},
				{"total_lag", render.U64(total)},
			}...)
			if err := render.Fields(a.stdout, fields); err != nil {
				return err
			}
			if len(rows) == 0 {
				return nil
			}
			t := &render.Table{Header: []string{"KEY", "OFFSET", "HIGHEST", "LAG"}, Right: []bool{false, true, true, true}}
			for _, r := range shown {
				t.Add(render.Key(r.Key), render.U64(r.Offset), render.U64(r.Highest), fmt.Sprint(r.Lag))
			}
			if _, err := io.WriteString(a.stdout, "\n"); err != nil {
				return err
			}
			if err := t.Write(a.stdout); err != nil {
				return err
			}
			return render.More(a.stdout, len(rows)-len(shown))
		}),
	}
	jf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.Flags().IntVar(&top, "top", 0, "print only the N keys with the largest lag (0: all)")
	cmd.Flags().BoolVar(&allStreams, "all-streams", false, "also list the journal's streams the outbox has no key for yet, with offset 0")
	return cmd
}

// unseenCount is the JSON of the unseen count: absent without --all-streams.
func unseenCount(allStreams bool, unseen []string) *int {
	if !allStreams {
		return nil
	}
	n := len(unseen)
	return &n
}
