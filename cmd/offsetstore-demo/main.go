// Command offsetstore-demo runs the offset store end to end and makes
// at-least-once delivery visible: the reference relay (examples/relay)
// publishes the events of many streams, is killed mid-way, a second relay
// takes over from the saved offsets, and the demo checks that no event was
// lost (exit status 1 if one was). --async publishes with out-of-order
// acknowledgements; --exactly-once adds the same run into a sink table,
// rows and offsets in one transaction.
//
// It starts a throwaway PostgreSQL, unless --database-url names a server:
// in a container through testcontainers-go (image $OFFSETSTORE_TEST_IMAGE,
// else the pinned official image) when a Docker engine answers, else from
// PostgreSQL's binaries on this machine (initdb and postgres on PATH or
// under /usr/lib/postgresql/*/bin, the newest; package internal/localpg).
// --backend container or local chooses. It prints which backend it used.
// It is a program of its own so that the operator CLI, cmd/offsetstore,
// links no Docker client.
//
//	go run ./cmd/offsetstore-demo
//	go run ./cmd/offsetstore-demo --aggregates 1000 --events 20
//	go run ./cmd/offsetstore-demo --async
//	go run ./cmd/offsetstore-demo --exactly-once
//	go run ./cmd/offsetstore-demo --backend local
//	go run ./cmd/offsetstore-demo --database-url postgres://offsetstore:offsetstore@127.0.0.1:5432/offsetstore
//
// Exit status: 0 nothing lost, 1 an error or a lost event, 2 a usage error,
// 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/cmd/internal/console"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	console.Main(func(ctx context.Context) int {
		return run(ctx, os.Args[1:], &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, isTTY: console.IsTerminal})
	})
}

// app is one run of the demo: its streams and environment.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	isTTY          func(io.Writer) bool
}

// usageError is a command line the demo refuses.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run runs the demo with args and returns the exit status. Tests call it
// in-process with their own streams.
func run(ctx context.Context, args []string, a *app) int {
	cmd := newDemoCmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(a.stdout)
	cmd.SetErr(a.stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ue *usageError
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fmt.Fprintf(a.stderr, "offsetstore-demo: interrupted: %v\n", err)
		return exitInterrupted
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "offsetstore-demo: %v\nRun 'offsetstore-demo --help' for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(a.stderr, "offsetstore-demo: %v\n", err)
	return exitFailure
}

func newDemoCmd(a *app) *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "offsetstore-demo",
		Short: "Run a relay, kill it mid-way, restart it, and check that no event was lost",
		Long: `Run the offset store end to end, at-least-once delivery made visible:

 1. Start a throwaway PostgreSQL, unless --database-url names a server:
    with --backend auto (the default) in a container through
    testcontainers-go (image $` + envImage + `, else ` + defaultImage + `) when a
    Docker engine answers ($DOCKER_HOST's when set), else from PostgreSQL's
    binaries on this machine (initdb and postgres on PATH or under
    /usr/lib/postgresql/*/bin, the newest; $OFFSETSTORE_PG_BIN names their
    directory): a data directory in a temporary directory, a free port of
    127.0.0.1, run as the user postgres (or nobody) when started as root.
    --backend container or local insists on one. The backend used is
    printed. The server is stopped and removed at the end, also on error or
    Ctrl-C. $DATABASE_URL is deliberately not used: the demo writes rows.
 2. Apply the migrations and append --events events to each of --aggregates
    streams, --batch events per Append.
 3. Run the reference relay (package examples/relay): it takes the
    outbox's leadership, discovers the streams, replays each from its offset
    + 1, publishes each event to an in-memory sink (a count per persistence
    id and sequence number) and marks it done; its committer saves the
    offsets every --save-every events or every second.
 4. Kill the relay after --kill-at events: its writes freeze (a stopped
    process) and its leadership session is terminated (pg_terminate_backend).
    A second relay takes the leadership and finishes from the saved offsets.
    When it has saved once, the killed relay's frozen last save goes on and
    is refused (store.ErrFenced).
 5. Print events, published, re-published (events published twice: the
    at-least-once window between the last save and the kill), lost (events
    never published; must be 0), the committer's saves, and the final offsets.

Modes:
  --async          publish asynchronously; a broker acknowledges events in
                   shuffled order, and the relay tracks each event before
                   publishing it and marks it on its ack (Committer.Track +
                   Mark): no save passes an event still in flight; 0 lost.
  --exactly-once   then run the same kill and restart with a sink table in the
                   same database: each batch's rows and its offsets commit in
                   one transaction (Store.SaveTx), and the rows are counted:
                   re-published 0 and lost 0, beside the at-least-once run.
  --incremental    the relays save their offsets in incremental mode (deltas
                   of the keys that moved between full snapshots); combines
                   with the modes above.

The exit status is 1 if any event was lost. A progress bar is drawn on
standard error when it is a terminal. Every run uses its own outbox and
stream names (demo-<random>), so it can run against a database repeatedly.`,
		Example: `  offsetstore-demo
  offsetstore-demo --async
  offsetstore-demo --exactly-once
  offsetstore-demo --incremental --exactly-once
  offsetstore-demo --backend local
  OFFSETSTORE_TEST_IMAGE=localhost/postgres:17 offsetstore-demo --aggregates 1000 --events 20
  offsetstore-demo --database-url postgres://offsetstore:offsetstore@127.0.0.1:5432/offsetstore`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("offsetstore-demo takes no arguments; got %d", len(args))
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.demo(cmd.Context(), &f)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	fs := cmd.Flags()
	fs.StringVar(&f.databaseURL, "database-url", "", "PostgreSQL URL to run against instead of a throwaway server ($DATABASE_URL is not read)")
	fs.StringVar(&f.backend, "backend", backendAuto, "the throwaway server: auto (a container when Docker answers, else local binaries), container or local")
	fs.IntVar(&f.aggregates, "aggregates", 200, "number of event streams (aggregates)")
	fs.IntVar(&f.events, "events", 50, "events per stream")
	fs.IntVar(&f.batch, "batch", 1000, "events per Append")
	fs.IntVar(&f.saveEvery, "save-every", 500, "the relay's committer saves its offsets every N events (or every second)")
	fs.IntVar(&f.killAt, "kill-at", 0, "kill the first relay after N published events (default: half-way, between two saves)")
	fs.IntVar(&f.top, "top", 10, "print the first N keys of the final offsets (0: all)")
	fs.StringVar(&f.image, "image", "", "container image (default $"+envImage+", else "+defaultImage+")")
	fs.DurationVar(&f.publishDelay, "publish-delay", 50*time.Microsecond, "time one publish takes (the sink's latency), so that saves run while the relay publishes")
	fs.BoolVar(&f.async, "async", false, "publish asynchronously, acknowledged out of order (Committer.Track + Mark)")
	fs.BoolVar(&f.exactlyOnce, "exactly-once", false, "then run the same kill and restart into a sink table, rows and offsets in one transaction (Store.SaveTx)")
	fs.BoolVar(&f.incremental, "incremental", false, "save the offsets in incremental mode: deltas of the keys that moved, full snapshots now and then (store.WithIncremental)")
	fs.BoolVar(&f.verbose, "verbose", false, "print testcontainers' log on standard error")
	return cmd
}
