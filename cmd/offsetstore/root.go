package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outboxkit/offsetstore/cmd/internal/console"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// app is one run of the command line: its streams, its environment and
// the flags every command shares.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	databaseURL string // --database-url
	ran         bool   // a command's RunE was reached

	// configurePool, when not nil, changes the pool's config before it
	// connects (tests count statements with a tracer).
	configurePool func(*pgxpool.Config)
}

// envDatabaseURL is read when --database-url is not given.
const envDatabaseURL = "DATABASE_URL"

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "offsetstore",
		Short: "Inspect and operate outbox relay offsets kept in PostgreSQL",
		Long: `offsetstore inspects and operates the offsets that outbox relays keep in
PostgreSQL (package github.com/outboxkit/offsetstore/store): one snapshot row
per save, under the persistence id outbox::<OUTBOX>::offsets of the journal.

The connection comes from --database-url, else $DATABASE_URL, else the PG*
variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE …).

Writes (rewind, forget, import) are dry runs that print a diff unless --apply
is given; applied, each writes one snapshot and prunes nothing (the relay's
own retention prunes at its next write). Exit status: 0 success, 1 error, 2 usage error, 3 write refused
because the outbox moved (--if-seq) or another writer fenced it, 4 an outbox
is not OK (status), 130 interrupted.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.databaseURL, "database-url", "",
		"PostgreSQL URL or keyword/value string (default $DATABASE_URL, else the PG* variables)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(
		newShowCmd(a),
		newHistoryCmd(a),
		newLagCmd(a),
		newExportCmd(a),
		newRewindCmd(a),
		newForgetCmd(a),
		newImportCmd(a),
		newMigrateCmd(a),
		newListCmd(a),
		newStatusCmd(a),
		newServeCmd(a),
	)
	return root
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// runE adapts a command body: it gets the command's context and marks
// that the command line was accepted.
func (a *app) runE(body func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		return body(cmd.Context(), cmd, args)
	}
}

// exactArgs accepts exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("%s takes %d argument(s), %s; got %d", cmd.Name(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// minArgs accepts at least n positional arguments, described by usage.
func minArgs(n int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageErrorf("%s takes %s; got %d argument(s)", cmd.Name(), usage, len(args))
		}
		return nil
	}
}

// connString is the connection string to use: --database-url, else
// $DATABASE_URL, else "" (pgx then reads the PG* variables).
func (a *app) connString() string {
	if a.databaseURL != "" {
		return a.databaseURL
	}
	return a.getenv(envDatabaseURL)
}

// connect opens a small pool on connString() and checks that the server
// answers.
func (a *app) connect(ctx context.Context) (*pgxpool.Pool, error) {
	pool, err := console.Connect(ctx, a.connString(), "offsetstore", a.configurePool)
	if errors.Is(err, console.ErrInvalidConnString) {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return pool, err
}

// journalFlags are the flags of the commands that read or write the
// journal.
type journalFlags struct {
	table string
}

func (f *journalFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.table, "table", "",
		`journal table as [schema.]table, names taken literally; double-quote a name with a dot: '"my.schema".journal' (default journal on the search_path)`)
}

// conn is a pool and the journal on it. The CLI runs no SQL of its own:
// every read and write goes through the journal.
type conn struct {
	pool  *pgxpool.Pool
	j     *pgjournal.Journal
	table pgx.Identifier // for messages
}

func (c *conn) Close() { c.pool.Close() }

// open parses --table and connects.
func (a *app) open(ctx context.Context, f *journalFlags) (*conn, error) {
	schema, table, err := parseTable(f.table)
	if err != nil {
		return nil, usageErrorf("--table %q: %v", f.table, err)
	}
	pool, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	ident := pgx.Identifier{table}
	if schema != "" {
		ident = pgx.Identifier{schema, table}
	}
	return &conn{pool: pool, j: pgjournal.New(pool, pgjournal.WithTable(schema, table)), table: ident}, nil
}

// parseTable splits [schema.]table. A part may be double-quoted, with ""
// for a quote inside, so that it can contain a dot. "" is the default
// table.
func parseTable(s string) (schema, table string, err error) {
	if s == "" {
		return "", pgjournal.DefaultTable, nil
	}
	var parts []string
	rest := s
	for {
		var part string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for {
				j := strings.IndexByte(rest[i:], '"')
				if j < 0 {
					return "", "", fmt.Errorf("unterminated quoted name")
				}
				b.WriteString(rest[i : i+j])
				i += j + 1
				if strings.HasPrefix(rest[i:], `"`) { // "" is a quote
					b.WriteByte('"')
					i++
					continue
				}
				break
			}
			part, rest = b.String(), rest[i:]
			if rest != "" && rest[0] != '.' {
				return "", "", fmt.Errorf("unexpected %q after a quoted name", rest)
			}
		} else {
			i := strings.IndexAny(rest, `."`)
			if i < 0 {
				i = len(rest)
			} else if rest[i] == '"' {
				return "", "", fmt.Errorf("a quote inside an unquoted name")
			}
			part, rest = rest[:i], rest[i:]
		}
		if part == "" {
			return "", "", fmt.Errorf("empty name")
		}
		parts = append(parts, part)
		if rest == "" {
			break
		}
		rest = rest[1:] // the dot
		if len(parts) == 2 {
			return "", "", fmt.Errorf("want [schema.]table, got more than two names")
		}
	}
	if len(parts) == 2 {
		schema = parts[0]
	}
	table = parts[len(parts)-1]
	if err := pgjournal.ValidateTable(schema, table); err != nil {
		return "", "", err
	}
	return schema, table, nil
}

// checkOutbox rejects an outbox name the store would refuse
// (store.ValidateName), as a usage error.
func checkOutbox(name string) error {
	if err := store.ValidateName(name); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	return nil
}

// writerID names the CLI as the writer of the snapshots it writes: an
// operator's id (store.OperatorWriterID), so that a relay it fences can
// tell an operator's change from a rival relay, and a fresh one per run, so
// that the store's lost-acknowledgement adoption never mistakes one run's
// row for another's.
func writerID() string { return store.OperatorWriterID("offsetstore") }
