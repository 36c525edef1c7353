package main

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/internal/localpg"
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
	// 108 events; killed after 108/2 + 10/2 = 59. The committer saves in
	// the background, so how many of the 59 were saved varies: the
	// re-published count is the killed relay's unsaved window, and nothing
	// is lost.
	for _, want := range []string{
		"demo: 12 aggregates x 9 events = 108 events; the relay's committer saves every 10 events and the relay is killed after 59\n",
		"append: 108 events in 5 batches",
		"relay 1: published 59, saved ",
		"fencing: the killed relay",
		"\nevents        108\n",
		"\nlost          0 (",
		"\nsaves         ",
		"first 3 of 12 keys",
		"keys            12\n",
		"-agg-01       9\n",
		"... and 9 more keys\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	checkWindow(t, out, 108)
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
		{[]string{"--backend", "podman"}, `--backend "podman": want auto, container or local`},
		{[]string{"--backend", "local", "--database-url", "postgres://x/y"}, "--backend local and --database-url"},
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

// TestDemoLocalBackend runs the demo on a throwaway server from the local
// binaries, as on a machine without Docker: it says so, and stops and
// removes the server at the end.
func TestDemoLocalBackend(t *testing.T) {
	t.Parallel()
	if _, err := localpg.Find(t.Context()); err != nil {
		if os.Getenv(testdb.EnvBackend) == "local" {
			t.Fatalf("$%s=local, and %v", testdb.EnvBackend, err)
		}
		t.Skipf("no local PostgreSQL binaries, the demo's local backend is not tested here: %v", err)
	}
	code, out, stderr := runDemo(t, "--backend", "local", "--aggregates", "8", "--events", "5", "--save-every", "5", "--top", "1")
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, out)
	}
	m := localDirRE.FindStringSubmatch(out)
	if !strings.Contains(out, "postgres: backend: local binaries, PostgreSQL ") || m == nil ||
		!strings.Contains(out, "postgres: local server stopped, "+m[1]+" removed\n") {
		t.Fatalf("output does not name the local backend, or its stop:\n%s", out)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s is still there after the demo: %v", m[1], err)
	}
	checkWindow(t, out, 40)
}

var localDirRE = regexp.MustCompile(`postgres: ready on 127\.0\.0\.1:\d+, data in (\S+?)[,\s]`)

func TestDemoHelp(t *testing.T) {
	t.Parallel()
	code, out, stderr := runDemo(t, "--help")
	if code != exitOK || stderr != "" || !strings.Contains(out, "Usage:") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, stderr, out)
	}
}

var (
	killedRE    = regexp.MustCompile(`killed (\d+) events after its last save`)
	relay2RE    = regexp.MustCompile(`relay 2: reopened at snapshot \d+, published (\d+),`)
	publishedRE = regexp.MustCompile(`\npublished +(\d+)\nre-published +(\d+) `)
)

// checkWindow checks that the figures agree: relay 2 published what relay
// 1 had not saved, re-published is relay 1's unsaved window, published is
// every event plus the window.
func checkWindow(t *testing.T, out string, events int) {
	t.Helper()
	num := func(re *regexp.Regexp, i int) int {
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("output lacks %s:\n%s", re, out)
		}
		n, _ := strconv.Atoi(m[i])
		return n
	}
	killed, published2 := num(killedRE, 1), num(relay2RE, 1)
	published, republished := num(publishedRE, 1), num(publishedRE, 2)
	if republished != killed || published != events+killed {
		t.Fatalf("killed %d after the last save, re-published %d, published %d of %d events (relay 2: %d)\n%s",
			killed, republished, published, events, published2, out)
	}
}

func TestDemoAsync(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	code, out, stderr := runDemo(t, "--database-url", db.URL, "--async", "--aggregates", "10", "--events", "12", "--save-every", "15", "--top", "1")
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, out)
	}
	for _, want := range []string{"mode: async", "\nlost          0 (", "fencing: the killed relay"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	checkWindow(t, out, 120)
}

var tableRE = regexp.MustCompile(`(?m)^(re-published|lost) +(\d+) +(\d+)$`)

func TestDemoExactlyOnce(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	code, out, stderr := runDemo(t, "--database-url", db.URL, "--exactly-once", "--aggregates", "10", "--events", "12", "--save-every", "15", "--top", "1")
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, out)
	}
	rows := tableRE.FindAllStringSubmatch(out, -1)
	if len(rows) != 2 {
		t.Fatalf("no re-published and lost rows in the comparison table:\n%s", out)
	}
	for _, r := range rows {
		if r[3] != "0" || (r[1] == "lost" && r[2] != "0") {
			t.Errorf("%s: at-least-once %s, exactly-once %s; want exactly-once 0 (and lost 0 for both)", r[1], r[2], r[3])
		}
	}
	if !strings.Contains(out, "killed inside the next one") {
		t.Errorf("output lacks the exactly-once kill:\n%s", out)
	}
	var dups int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT 1 FROM offsetstore_demo_sink
  GROUP BY outbox, persistence_id, sequence_nr HAVING count(*) > 1) d`).Scan(&dups); err != nil || dups != 0 {
		t.Fatalf("%d duplicate sink rows (%v), want 0", dups, err)
	}
	var rowsN int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM offsetstore_demo_sink`).Scan(&rowsN); err != nil || rowsN != 120 {
		t.Fatalf("%d sink rows (%v), want 120", rowsN, err)
	}
}

// --incremental runs both relays, at least once and exactly once, with
// their stores in incremental mode: the offsets are deltas between full
// snapshots, and nothing is lost or written twice.
func TestDemoIncremental(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	code, out, stderr := runDemo(t, "--database-url", db.URL, "--incremental", "--exactly-once", "--aggregates", "10", "--events", "12", "--save-every", "15", "--top", "1")
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, out)
	}
	for _, want := range []string{"saved in incremental mode", "mode            incremental\n", "fencing: the killed relay"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	rows := tableRE.FindAllStringSubmatch(out, -1)
	if len(rows) != 2 {
		t.Fatalf("no re-published and lost rows in the comparison table:\n%s", out)
	}
	for _, r := range rows {
		if r[3] != "0" || (r[1] == "lost" && r[2] != "0") {
			t.Errorf("%s: at-least-once %s, exactly-once %s; want exactly-once 0 (and lost 0 for both)", r[1], r[2], r[3])
		}
	}
	var deltas int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM journal WHERE manifest = $1`, "outbox-offsets-delta").Scan(&deltas); err != nil || deltas == 0 {
		t.Fatalf("%d delta rows (%v): the relays did not save incrementally", deltas, err)
	}
}
