package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/internal/testdb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) { testdb.Main(m) }

// result is one in-process run of the command line.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command line in-process, with an empty environment unless
// env is given, and stdin as standard input.
type cli struct {
	env   map[string]string
	stdin string
	// configure, when not nil, changes the config of the CLI's pool.
	configure func(*pgxpool.Config)
}

func (c cli) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, &app{
		stdin:  strings.NewReader(c.stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string { return c.env[k] },

		configurePool: c.configure,
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return cli{}.run(t, args...)
}

// mustRun runs the command line and fails the test unless it succeeds.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := runCLI(t, args...)
	if r.code != 0 {
		t.Fatalf("offsetstore %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// wantFailure checks the exit status and that stderr contains want.
func (r result) wantFailure(t *testing.T, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstderr: %s\nstdout: %s", r.code, code, r.stderr, r.stdout)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
	}
}

// golden compares got with testdata/name.golden, or rewrites the file
// with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var walk func(c *cobra.Command, path []string)
	var paths [][]string
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(newRootCmd(&app{}), nil)
	if len(paths) < 12 {
		t.Fatalf("found %d commands, want every command of the tree", len(paths))
	}
	for _, path := range paths {
		t.Run(strings.Join(append([]string{"offsetstore"}, path...), " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, append(path, "--help")...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "Usage:") {
				t.Fatalf("no usage in:\n%s", r.stdout)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuchcommand"}, `unknown command "nosuchcommand"`},
		{[]string{"show"}, "show takes 1 argument(s), OUTBOX; got 0"},
		{[]string{"show", "a", "b"}, "got 2"},
		{[]string{"show", "orders", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"show", "orders", "--limit", "x"}, "invalid argument"},
		{[]string{"show", "orders", "--limit", "-1"}, "--limit -1"},
		{[]string{"lag", "orders", "--top", "-1"}, "--top -1"},
		{[]string{"show", ""}, `invalid outbox name: outbox name "" is empty`},
		{[]string{"show", "bad\xffname"}, `invalid outbox name: outbox name "bad\xffname" is not valid UTF-8`},
		{[]string{"history", "a\x00b"}, "NUL"},
		{[]string{"show", "orders", "--table", "a.b.c"}, "more than two names"},
		{[]string{"show", "orders", "--table", `"open`}, "unterminated"},
		{[]string{"rewind", "orders"}, "rewind takes KEY=N pairs, or a reset mode"},
		{[]string{"rewind", "orders", "order-1"}, `argument "order-1": want KEY=N`},
		{[]string{"rewind", "orders", "order-1=x"}, `offset "x" is not a whole number`},
		{[]string{"rewind", "orders", "order-1=-1"}, `offset "-1" is not a whole number`},
		{[]string{"rewind", "orders", "order-1=+1"}, `offset "+1" is not a whole number`},
		{[]string{"rewind", "orders", "order-1="}, `offset "" is not a whole number`},
		{[]string{"rewind", "orders", "order-1=18446744073709551616"}, "is not a whole number from 0 to 18446744073709551615"},
		{[]string{"rewind", "orders", "=5"}, `invalid offset key: key "" is empty`},
		{[]string{"rewind", "orders", "k\xfe=5"}, "not valid UTF-8"},
		{[]string{"rewind", "orders", "a=1", "a=2"}, `key "a" is given twice`},
		{[]string{"rewind", "orders", "a=1", "--if-seq", "-3"}, "invalid argument"},
		{[]string{"forget", "orders"}, "at least one KEY"},
		{[]string{"forget", "orders", "k\xfe"}, "not valid UTF-8"},
		{[]string{"forget", "orders", "k", "--create"}, "unknown flag: --create"},
		{[]string{"import", "orders"}, "import takes 2 argument(s)"},
		{[]string{"migrate", "down"}, "pass --yes"},
		{[]string{"migrate", "sideways"}, `unknown command "sideways"`},
		{[]string{"show", "orders", "--database-url", "postgres://a b/"}, "invalid connection string"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tc.args...)
			r.wantFailure(t, exitUsage, tc.want)
			if !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("no pointer to --help in:\n%s", r.stderr)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	t.Parallel()
	runCLI(t, "import", "orders", "/nonexistent/offsets.json").wantFailure(t, exitFailure, "open /nonexistent/offsets.json: no such file")
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "show", "orders", "--database-url", "postgres://u@127.0.0.1:1/db?connect_timeout=5")
	r.wantFailure(t, exitFailure, `connect to database "db" on 127.0.0.1:1`)
}

func TestParseTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, schema, table, err string
	}{
		{"", "", "journal", ""},
		{"journal", "", "journal", ""},
		{"ops.journal", "ops", "journal", ""},
		{"Ops.Journal", "Ops", "Journal", ""},
		{`"my.schema".journal`, "my.schema", "journal", ""},
		{`ops."a ""quoted"" name"`, "ops", `a "quoted" name`, ""},
		{`"j"`, "", "j", ""},
		{"a.b.c", "", "", "more than two names"},
		{"ops.", "", "", "empty name"},
		{".journal", "", "", "empty name"},
		{`"ops"x`, "", "", "after a quoted name"},
		{`op"s`, "", "", "quote inside"},
		{`"ops`, "", "", "unterminated"},
		{strings.Repeat("x", 64), "", "", "longer than 63 bytes"},
		{strings.Repeat("s", 64) + ".journal", "", "", "invalid schema name: is longer than 63 bytes"},
		{"ops.j\x00", "", "", "NUL"},
		{"j\xff", "", "", "UTF-8"},
	} {
		schema, table, err := parseTable(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseTable(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || schema != tc.schema || table != tc.table {
			t.Errorf("parseTable(%q) = %q, %q, %v; want %q, %q", tc.in, schema, table, err, tc.schema, tc.table)
		}
	}
}

func TestLagOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		highest, offset uint64
		want            int64
	}{
		{10, 3, 7}, {3, 3, 0}, {0, 5, -5}, {1 << 63, 0, 1<<63 - 1}, {0, 1<<64 - 1, -(1<<63 - 1)},
	} {
		if got := lagOf(tc.highest, tc.offset); got != tc.want {
			t.Errorf("lagOf(%d, %d) = %d, want %d", tc.highest, tc.offset, got, tc.want)
		}
	}
}

func decodeJSON(s string, v any) error { return json.Unmarshal([]byte(s), v) }
