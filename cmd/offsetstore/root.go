package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// app is one run of the command line: its streams, its environment and
// the flags every command shares.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	isTTY          func(io.Writer) bool

	databaseURL string // --database-url
	ran         bool   // a command's RunE was reached
}

// envDatabaseURL is read when --database-url is not given.
const envDatabaseURL = "DATABASE_URL"

// connectTimeout bounds each connection attempt unless the connection
// string sets connect_timeout.
const connectTimeout = 10 * time.Second

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
is given. Exit status: 0 success, 1 error, 2 usage error, 3 write refused
because the outbox moved (--if-seq) or another writer fenced it, 130
interrupted.`,
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
		newDemoCmd(a),
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

// normalizeURL turns what the migrate CLI accepts into what pgx accepts:
// a pgx5:// or pgx:// scheme becomes postgres://, and x-… query
// parameters (the migrate CLI's own, such as x-migrations-table), which
// the server would reject as unknown settings, are dropped. Keyword/value
// strings are returned as they are.
func normalizeURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	switch strings.ToLower(scheme) {
	case "pgx", "pgx5":
		scheme = "postgres"
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil || u.RawQuery == "" {
		return scheme + "://" + rest // pgx reports a malformed URL itself
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "x-") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// connect opens a small pool on connString() and checks that the server
// answers.
func (a *app) connect(ctx context.Context) (*pgxpool.Pool, error) {
	return connect(ctx, a.connString())
}

func connect(ctx context.Context, connString string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(normalizeURL(connString))
	if err != nil {
		return nil, usageErrorf("invalid connection string: %v", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "offsetstore"
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", describe(cfg), err)
	}
	return pool, nil
}

func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	if strings.HasPrefix(c.Host, "/") {
		return fmt.Sprintf("database %q on socket %s", c.Database, c.Host)
	}
	return fmt.Sprintf("database %q on %s:%d", c.Database, c.Host, c.Port)
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

// conn is a pool and the journal on it.
type conn struct {
	pool  *pgxpool.Pool
	j     *pgjournal.Journal
	table pgx.Identifier // quoted with Sanitize in the CLI's own SQL
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

// maxIdentifierLen is PostgreSQL's limit on an identifier, in bytes; a
// longer one would be truncated silently.
const maxIdentifierLen = 63

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
		if err := checkIdentifier(part); err != nil {
			return "", "", err
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
	if len(parts) == 1 {
		return "", parts[0], nil
	}
	return parts[0], parts[1], nil
}

func checkIdentifier(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case !utf8.ValidString(name):
		return fmt.Errorf("name is not valid UTF-8")
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("name contains a NUL byte")
	case len(name) > maxIdentifierLen:
		return fmt.Errorf("name %q is longer than %d bytes", name, maxIdentifierLen)
	}
	return nil
}

// checkOutbox rejects an outbox name the store would refuse, as a usage
// error naming the problem.
func checkOutbox(name string) error {
	if reason := textProblem(name, store.MaxNameLen); reason != "" {
		return usageErrorf("invalid outbox name %s: %s", quoteShort(name), reason)
	}
	return nil
}

// checkKey rejects a key the store would refuse.
func checkKey(key string) error {
	if reason := textProblem(key, store.MaxKeyLen); reason != "" {
		return fmt.Errorf("invalid key %s: %s", quoteShort(key), reason)
	}
	return nil
}

func textProblem(s string, maxLen int) string {
	switch {
	case s == "":
		return "it is empty"
	case !utf8.ValidString(s):
		return "it is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "it contains a NUL byte"
	case len(s) > maxLen:
		return fmt.Sprintf("it is %d bytes long, over the limit of %d", len(s), maxLen)
	}
	return ""
}

func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q… (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// writerID names the CLI as the writer of the snapshots it writes: a fresh
// id per run, so that the store's lost-acknowledgement adoption never
// mistakes one run's row for another's.
func writerID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "offsetstore-cli-" + hex.EncodeToString(b[:])
}
