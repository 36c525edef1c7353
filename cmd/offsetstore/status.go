package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/cmd/internal/exporter"
	"github.com/outboxkit/offsetstore/cmd/internal/render"
	"github.com/outboxkit/offsetstore/monitor"
)

// exitNotOK is status's exit status when an outbox is not OK.
const exitNotOK = 4

func newStatusCmd(a *app) *cobra.Command {
	var (
		jf       journalFlags
		mf       monitorFlags
		asJSON   bool
		polls    int
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [OUTBOX...]",
		Short: "Tell whether the relay of each outbox keeps up (a health check)",
		Long: `Print each outbox's status (OK, WARN, STOP, REWIND, ERR, NOTFOUND), its lag
(events not yet published: the sum over keys of the stream's highest sequence
number - the key's offset), its lag time (the age of the oldest event not yet
published), its snapshot's age and its keys. Every outbox of the journal
table, or the ones named.

  OK        the relay keeps up, or nothing waits
  WARN      the lag grew at every poll (needs --polls 2 or more)
  STOP      events wait, the oldest for longer than --stop-after, and no
            snapshot was written for as long: the relay is dead or stuck
  REWIND    an offset went down between two polls (needs --polls 2 or more)
  ERR       the snapshot cannot be read
  NOTFOUND  no snapshot of the named outbox

With --polls N it polls N times, --interval apart, and judges the window of
those polls. Ages are measured with this machine's clock against written_at,
which the database server sets.

Exit status: 0 when every outbox is OK, 4 when one is not (the table says
which), 1 when the journal cannot be read, 2 for a usage error.`,
		Example: `  offsetstore status
  offsetstore status orders-to-kafka --json
  offsetstore status --polls 4 --interval 15s    # WARN and REWIND need a window`,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if polls < 1 {
				return usageErrorf("--polls %d: want 1 or more", polls)
			}
			if interval <= 0 {
				return usageErrorf("--interval %v: want more than 0", interval)
			}
			opts, unseen, err := mf.options(max(2, polls), args)
			if err != nil {
				return err
			}
			c, err := a.open(ctx, &jf)
			if err != nil {
				return err
			}
			defer c.Close()
			m, err := monitor.New(c.j, append(opts, monitor.WithDiscoveryPage(0))...)
			if err != nil {
				return err
			}
			var reports []monitor.Report
			for i := range polls {
				if i > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(interval):
					}
				}
				if reports, err = m.Poll(ctx); err != nil {
					return err
				}
			}
			if asJSON {
				if err := render.JSON(a.stdout, exporter.Doc(reports, m.Rules(), unseen, nil)); err != nil {
					return err
				}
			} else if err := writeStatus(a, reports); err != nil {
				return err
			}
			notOK := 0
			for _, r := range reports {
				if r.Status != monitor.StatusOK {
					notOK++
				}
			}
			if notOK > 0 {
				return &exitError{code: exitNotOK, err: fmt.Errorf("%d of %d outboxes not OK", notOK, len(reports))}
			}
			if len(reports) == 0 {
				fmt.Fprintf(a.stderr, "no outbox in table %s\n", c.table.Sanitize())
			}
			return nil
		}),
	}
	jf.register(cmd.Flags())
	mf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the document GET /status of serve returns) instead of a table")
	cmd.Flags().IntVar(&polls, "polls", 1, "poll N times and judge the window of those polls")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between two polls (with --polls)")
	return cmd
}

func writeStatus(a *app, reports []monitor.Report) error {
	t := &render.Table{
		Header: []string{"OUTBOX", "STATUS", "LAG", "LAG_TIME", "SNAPSHOT_AGE", "KEYS", "REASON"},
		Right:  []bool{false, false, true, true, true, true, false},
	}
	for _, r := range reports {
		lag, lagTime, age, keys := "-", "-", "-", "-"
		if r.Err == nil && r.Found {
			lag, lagTime, age, keys = render.U64(r.Lag), exporter.Age(r.LagTime), exporter.Age(r.SnapshotAge), fmt.Sprint(r.Keys)
		}
		t.Add(render.Key(r.Outbox), string(r.Status), lag, lagTime, age, keys, r.Reason)
	}
	if len(reports) == 0 {
		return nil
	}
	return t.Write(a.stdout)
}
