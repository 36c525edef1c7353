package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/cmd/internal/exporter"
	"github.com/outboxkit/offsetstore/cmd/internal/render"
	"github.com/outboxkit/offsetstore/monitor"
	"github.com/outboxkit/offsetstore/store"
)

// listRow is one outbox of list.
type listRow struct {
	Outbox     string  `json:"outbox"`
	Keys       int     `json:"keys"`
	Seq        uint64  `json:"seq"`
	WrittenAt  string  `json:"written_at,omitempty"`
	AgeSeconds float64 `json:"age_seconds"`
	Mode       string  `json:"mode,omitempty"`
	Writer     string  `json:"writer,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// outboxNames lists the outboxes of the journal.
func outboxNames(ctx context.Context, c *conn) ([]string, error) {
	names, err := monitor.Outboxes(ctx, c.j)
	if err != nil {
		return nil, fmt.Errorf("list the outboxes: %w", err)
	}
	return names, nil
}

func newListCmd(a *app) *cobra.Command {
	var (
		jf     journalFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every outbox of the journal table",
		Long: `List every outbox whose offsets the journal table holds (the streams
outbox::<OUTBOX>::offsets), one line each: its name, the keys of its newest
snapshot, that snapshot's sequence number and age, and its mode (full, or
incremental: delta rows between full snapshots).

An outbox whose snapshot cannot be read is listed with KEYS "-" and its
error on standard error, and the exit status is 1.`,
		Example: `  offsetstore list
  offsetstore list --json | jq -r '.[].outbox'`,
		Args: exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			c, err := a.open(ctx, &jf)
			if err != nil {
				return err
			}
			defer c.Close()
			names, err := outboxNames(ctx, c)
			if err != nil {
				return err
			}
			now := time.Now()
			rows := make([]listRow, 0, len(names))
			failed := 0
			for _, name := range names {
				r := listRow{Outbox: name}
				s, err := store.Open(ctx, c.j, name, store.WithoutPruning())
				if err != nil {
					r.Error = err.Error()
					failed++
					fmt.Fprintf(a.stderr, "warning: outbox %q: %v\n", name, err)
				} else {
					info := s.Info()
					r.Keys, r.Seq, r.Mode, r.Writer = info.Keys, info.SequenceNr, info.Mode.String(), info.Writer
					if !info.WrittenAt.IsZero() {
						r.WrittenAt = render.Time(info.WrittenAt)
						r.AgeSeconds = max(0, now.Sub(info.WrittenAt).Seconds())
					}
				}
				rows = append(rows, r)
			}
			if asJSON {
				if err := render.JSON(a.stdout, rows); err != nil {
					return err
				}
			} else {
				t := &render.Table{Header: []string{"OUTBOX", "KEYS", "SEQ", "AGE", "MODE", "WRITTEN_AT"}, Right: []bool{false, true, true, true, false, false}}
				for _, r := range rows {
					keys, age := fmt.Sprint(r.Keys), exporter.Age(time.Duration(r.AgeSeconds*float64(time.Second)))
					if r.Error != "" {
						keys, age = "-", "-"
					}
					t.Add(render.Key(r.Outbox), keys, render.U64(r.Seq), age, r.Mode, r.WrittenAt)
				}
				if len(rows) == 0 {
					fmt.Fprintf(a.stderr, "no outbox in table %s\n", c.table.Sanitize())
				} else if err := t.Write(a.stdout); err != nil {
					return err
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d outboxes cannot be read", failed, len(rows))
			}
			return nil
		}),
	}
	jf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}
