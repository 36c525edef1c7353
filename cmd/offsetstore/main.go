package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/cmd/internal/console"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailure  = 1 // the command failed
	exitUsage    = 2 // the command line is wrong
	exitConflict = 3 // a write was refused: --if-seq did not match, or fenced

	exitInterrupted = 130 // Ctrl-C or SIGTERM, as a shell reports SIGINT
)

func main() {
	console.Main(func(ctx context.Context) int {
		return run(ctx, os.Args[1:], &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	})
}

// run runs the command line args and returns the exit status. Tests call
// it in-process with their own streams and environment.
func run(ctx context.Context, args []string, a *app) int {
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fmt.Fprintf(a.stderr, "offsetstore: interrupted: %v\n", err)
		return exitInterrupted
	case errors.As(err, &ee):
		code = ee.code
	case !a.ran:
		// Cobra refused the command line before any command ran: an
		// unknown command, flag or a bad flag value.
		code = exitUsage
	}
	fmt.Fprintf(a.stderr, "offsetstore: %v\n", err)
	if h := hint(err); h != "" {
		fmt.Fprintf(a.stderr, "hint: %s\n", h)
	}
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// exitError carries the exit status of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func conflictErrorf(format string, args ...any) error {
	return &exitError{code: exitConflict, err: fmt.Errorf(format, args...)}
}

// hint suggests a way out of a few errors whose message alone does not.
func hint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgerrcode.UndefinedTable:
			return "the journal table is missing: apply the schema with 'offsetstore migrate up', or name the table with --table"
		case pgerrcode.UndefinedColumn:
			return "the table named by --table is not a journal table (see migrations/000001)"
		}
	}
	return ""
}
