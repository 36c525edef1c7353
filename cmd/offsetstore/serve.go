package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/cmd/internal/exporter"
	"github.com/outboxkit/offsetstore/monitor"
)

const (
	// defaultListen is serve's address: loopback unless told otherwise.
	defaultListen   = "127.0.0.1:9841"
	defaultInterval = 15 * time.Second
	shutdownGrace   = 5 * time.Second
)

func newServeCmd(a *app) *cobra.Command {
	var (
		jf       journalFlags
		mf       monitorFlags
		listen   string
		interval time.Duration
		window   int
		page     int
	)
	cmd := &cobra.Command{
		Use:   "serve [OUTBOX...]",
		Short: "Export the lag and status of every outbox over HTTP (Prometheus, JSON, a status page)",
		Long: `Poll every outbox of the journal table (or the ones named) every --interval and
serve what the last poll read:

  GET /metrics   Prometheus text format, gauges labelled outbox:
                 offsetstore_lag_events, offsetstore_lag_max_events,
                 offsetstore_lag_seconds, offsetstore_snapshot_age_seconds,
                 offsetstore_snapshot_sequence_nr, offsetstore_keys,
                 offsetstore_unseen_streams, offsetstore_status{outbox,status}
                 (1 for the current status, 0 for the others), and
                 offsetstore_up, offsetstore_poll_duration_seconds
  GET /status    the same as JSON, with the keys of the largest lag and the
                 window's polls (the document of status --json)
  GET /          a status page: one row per outbox, its status, lag, lag time,
                 snapshot age and the lag over the window as a chart; it
                 reloads itself every --interval
  GET /healthz   200 while the last poll read the journal, else 503

The statuses are judged over a window of --window polls (see 'offsetstore
status --help'). A poll that takes long (outboxes of millions of keys) spaces
the next ones so that polling takes at most 5 % of the time. It only reads the journal table: a role with SELECT on it
and nothing else is enough. New outboxes and streams without a key are found
by listing --discovery-page persistence ids per poll. Ctrl-C or SIGTERM stops
it (exit status 0).`,
		Example: `  offsetstore serve
  offsetstore serve --listen 0.0.0.0:9841 --interval 30s orders-to-kafka billing`,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if interval <= 0 {
				return usageErrorf("--interval %v: want more than 0", interval)
			}
			if window < 2 {
				return usageErrorf("--window %d: want 2 polls or more", window)
			}
			opts, unseen, err := mf.options(window, args)
			if err != nil {
				return err
			}
			c, err := a.open(ctx, &jf)
			if err != nil {
				return err
			}
			defer c.Close()
			m, err := monitor.New(c.j, append(opts, monitor.WithDiscoveryPage(page))...)
			if err != nil {
				return usageErrorf("%v", err)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			ex := exporter.New(m, exporter.PageConfig{Interval: interval, Rules: m.Rules(), Unseen: unseen})
			srv := &http.Server{Handler: ex, ReadHeaderTimeout: 10 * time.Second}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			fmt.Fprintf(a.stdout, "offsetstore: serving http://%s/ (metrics at /metrics), polling %s every %v\n", ln.Addr(), c.table.Sanitize(), interval)
			err = m.Run(ctx, interval, func(_ []monitor.Report, err error, took time.Duration) {
				ex.Observe(took)
				if err != nil {
					fmt.Fprintf(a.stderr, "offsetstore: poll failed: %v\n", err)
				}
			})
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
			defer cancel()
			if serr := srv.Shutdown(shutdown); serr != nil && err == nil {
				err = fmt.Errorf("shut the server down: %w", serr)
			}
			if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
				err = fmt.Errorf("serve: %w", serr)
			}
			if err == nil {
				fmt.Fprintln(a.stdout, "offsetstore: stopped")
			}
			return err
		}),
	}
	jf.register(cmd.Flags())
	mf.register(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", defaultListen, "address to serve HTTP on (host:port; loopback by default)")
	cmd.Flags().DurationVar(&interval, "interval", defaultInterval, "time between two polls")
	cmd.Flags().IntVar(&window, "window", monitor.DefaultWindow, "polls a status looks back over (WARN: the lag grew at each; REWIND: an offset went down in it)")
	cmd.Flags().IntVar(&page, "discovery-page", monitor.DefaultDiscoveryPage, "persistence ids listed per poll to find new outboxes and streams without a key (0: all, every poll)")
	return cmd
}
