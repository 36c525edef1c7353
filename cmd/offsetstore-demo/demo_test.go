package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// runDemo runs the demo in-process and returns its exit status and output.
func runDemo(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &app{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

// TestDemo runs the demo end to end, small, against the test database
// (--database-url: no second container).
func TestDemo(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	args := []string{"--database-url", db.URL, "--aggregates", "12", "--events", "9", "--batch", "25", "--save-every", "10", "--top", "3"}
	code, out, stderr := runDemo(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, out)
	}
	// 108 events; killed after 108/2 + 10/2 = 59, 9 after the save at 50.
	for _, want := range []string{
		"demo: 12 aggregates x 9 events = 108 events; the relay saves every 10 events and is killed after 59\n",
		"append: 108 events in 5 batches",
		"relay 1: published 59, saved 5 times (last at snapshot 5), killed 9 events after its last save",
		"relay 2: reopened at snapshot 5, published 58, saved 6 times",
		"fencing: the killed relay's late save was refused (store.ErrFenced)\n",
		"\nevents        108\npublished     117\nre-published  9 (",
		"\nlost          0 (",
		"first 3 of 12 keys",
		"keys            12\n",
		"-agg-01       9\n",
		"... and 9 more keys\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// Runs again on the same database, in its own names.
	if code, out, stderr := runDemo(t, args...); code != exitOK {
		t.Fatalf("second run: exit %d\nstderr: %s\nstdout: %s", code, stderr, out)
	}
	var outboxes int
	if err := db.Pool.QueryRow(t.Context(),
		`SELECT count(DISTINCT persistence_id) FROM journal WHERE persistence_id LIKE 'outbox::demo-%'`).Scan(&outboxes); err != nil || outboxes != 2 {
		t.Fatalf("%d demo outboxes (%v), want 2", outboxes, err)
	}
}

func TestDemoUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--aggregates", "0"}, "--aggregates 0"},
		{[]string{"--aggregates", "1", "--events", "1"}, "from 2"},
		{[]string{"--aggregates", "2", "--events", "2", "--kill-at", "4"}, "--kill-at 4"},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"extra"}, "takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runDemo(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "--help' for usage") {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}

func TestDemoHelp(t *testing.T) {
	t.Parallel()
	code, out, stderr := runDemo(t, "--help")
	if code != exitOK || stderr != "" || !strings.Contains(out, "Usage:") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, stderr, out)
	}
}
