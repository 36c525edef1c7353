package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/outboxkit/offsetstore/cmd/internal/exporter"
	"github.com/outboxkit/offsetstore/internal/testdb"
)

// syncBuffer is a buffer a running command writes to while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a running `offsetstore serve`.
type server struct {
	base   string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan int
	stdout *syncBuffer
	stderr *syncBuffer
}

var servingLine = regexp.MustCompile(`serving (http://[^/ ]+)/`)

// startServe runs `offsetstore serve` in-process on a free loopback port
// with args, and waits until its first poll has read the journal.
func startServe(t *testing.T, databaseURL string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--database-url", databaseURL}, args...)
	go func() {
		s.done <- run(ctx, all, &app{stdin: strings.NewReader(""), stdout: s.stdout, stderr: s.stderr, getenv: func(string) string { return "" }})
	}()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve exited with %d before serving\nstdout: %s\nstderr: %s", code, s.stdout, s.stderr)
		default:
		}
		if m := servingLine.FindStringSubmatch(s.stdout.String()); m != nil && s.base == "" {
			s.base = m[1]
		}
		if s.base != "" {
			if code, _ := get(t, s.base+"/healthz"); code == http.StatusOK {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve did not become healthy within 30 s\nstdout: %s\nstderr: %s", s.stdout, s.stderr)
	return nil
}

// stop cancels the server's context, as Ctrl-C does, and returns its exit
// status.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop within 20 s of its context's end")
		return -1
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func mustGet(t *testing.T, u string) string {
	t.Helper()
	code, body := get(t, u)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, code, body)
	}
	return body
}

// readerURL creates a role that may only SELECT from the journal table
// of the fixture's database and returns a URL that logs in as it.
func readerURL(t *testing.T, f *fixture) string {
	t.Helper()
	role := fmt.Sprintf("reader_%d", time.Now().UnixNano())
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD 'reader' NOSUPERUSER NOCREATEDB NOCREATEROLE`,
		`REVOKE ALL ON SCHEMA public FROM PUBLIC`,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT ON journal TO ` + role,
	} {
		if _, err := f.db.Pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = f.db.Pool.Exec(ctx, `REVOKE ALL ON journal FROM `+role)
		_, _ = f.db.Pool.Exec(ctx, `REVOKE ALL ON SCHEMA public FROM `+role)
	})
	u, err := url.Parse(f.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "reader")
	return u.String()
}

func TestListAndStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	out := mustRun(t, f.args("list")...)
	if !regexp.MustCompile(`(?m)^orders\s+6\s+5\s+\S+\s+full\s+2024-05-01T12:02:30\.5`).MatchString(out) {
		t.Fatalf("list:\n%s\nwant orders with 6 keys at snapshot 5, full", out)
	}
	var rows []listRow
	if err := json.Unmarshal([]byte(mustRun(t, f.args("list", "--json")...)), &rows); err != nil || len(rows) != 1 || rows[0].Keys != 6 || rows[0].Mode != "full" {
		t.Fatalf("list --json = %+v, %v", rows, err)
	}

	// The fixture's snapshot is from 2024 and its events wait (written a
	// moment ago: a threshold of 1 ms): STOP, exit 4.
	r := runCLI(t, f.args("status", "--stop-after", "1ms")...)
	if r.code != exitNotOK || !regexp.MustCompile(`(?m)^orders\s+STOP\s+20\s`).MatchString(r.stdout) {
		t.Fatalf("status: exit %d\n%s%s\nwant exit 4 and orders STOP with lag 20", r.code, r.stdout, r.stderr)
	}
	// The figures are lag --all-streams's.
	var lag struct {
		TotalLag uint64 `json:"total_lag"`
		Unseen   int    `json:"unseen"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, f.args("lag", "orders", "--all-streams", "--json")...)), &lag); err != nil {
		t.Fatal(err)
	}
	var doc exporter.StatusDoc
	r = runCLI(t, f.args("status", "orders", "--json", "--stop-after", "1ms")...)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Outboxes) != 1 {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	o := doc.Outboxes[0]
	if o.LagEvents != lag.TotalLag || o.UnseenStreams != lag.Unseen || o.Status != "STOP" || o.LagMaxEvents != 7 || o.Keys != 6 || o.SnapshotSeqNr != 5 {
		t.Fatalf("status --json = %+v; want lag %d (lag --all-streams), unseen %d, STOP, max 7, 6 keys, seq 5", o, lag.TotalLag, lag.Unseen)
	}
	// Streams without a key ignored: the keys' lag alone.
	r = runCLI(t, f.args("status", "orders", "--json", "--unseen", "ignore")...)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Outboxes[0].LagEvents != lag.TotalLag-7 {
		t.Fatalf("status --unseen ignore: %v, %+v; want lag %d", err, doc.Outboxes, lag.TotalLag-7)
	}
	// A threshold longer than the outbox's age: OK, exit 0.
	if r := runCLI(t, f.args("status", "--stop-after", "876000h")...); r.code != 0 || !strings.Contains(r.stdout, " OK ") {
		t.Fatalf("status --stop-after 100y: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// An outbox named but absent: NOTFOUND, exit 4.
	r = runCLI(t, f.args("status", "nope")...)
	if r.code != exitNotOK || !strings.Contains(r.stdout, "NOTFOUND") {
		t.Fatalf("status nope: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Usage errors.
	runCLI(t, f.args("status", "--unseen", "maybe")...).wantFailure(t, exitUsage, "--unseen")
	runCLI(t, f.args("status", "--polls", "0")...).wantFailure(t, exitUsage, "--polls")
	runCLI(t, f.args("serve", "--window", "1")...).wantFailure(t, exitUsage, "--window")
}

// serve with a role that may only SELECT from the journal: /metrics,
// /status, / and /healthz agree, the metrics pass promtool-style parsing
// (expfmt), and cancelling its context stops it with exit status 0.
func TestServeReadOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := startServe(t, readerURL(t, f), "--interval", "200ms", "--window", "3", "--stop-after", "1ms")

	var doc exporter.StatusDoc
	if err := json.Unmarshal([]byte(mustGet(t, s.base+"/status")), &doc); err != nil || len(doc.Outboxes) != 1 {
		t.Fatalf("/status: %v %+v", err, doc)
	}
	o := doc.Outboxes[0]
	metrics := mustGet(t, s.base+"/metrics")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(metrics))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, metrics)
	}
	// The poll between the two requests may differ only in ages.
	value := func(name string, labels ...string) float64 {
		fam, ok := families[name]
		if !ok {
			t.Fatalf("/metrics has no %s:\n%s", name, metrics)
		}
		for _, m := range fam.GetMetric() {
			match := true
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				match = match && found
			}
			if match {
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("/metrics has no %s%v", name, labels)
		return 0
	}
	for name, want := range map[string]float64{
		exporter.MetricLag:         float64(o.LagEvents),
		exporter.MetricLagMax:      float64(o.LagMaxEvents),
		exporter.MetricSnapshotSeq: float64(o.SnapshotSeqNr),
		exporter.MetricKeys:        float64(o.Keys),
		exporter.MetricUnseen:      float64(o.UnseenStreams),
	} {
		if got := value(name, "outbox", "orders"); got != want {
			t.Fatalf("%s = %v, /status says %v", name, got, want)
		}
	}
	for name, want := range map[string]float64{exporter.MetricLagSeconds: o.LagSeconds, exporter.MetricSnapshotAge: o.SnapshotAgeSeconds} {
		if got := value(name, "outbox", "orders"); math.Abs(got-want) > 5 {
			t.Fatalf("%s = %v, /status says %v", name, got, want)
		}
	}
	if o.Status != "STOP" || value(exporter.MetricStatus, "outbox", "orders", "status", "STOP") != 1 || value(exporter.MetricStatus, "outbox", "orders", "status", "OK") != 0 {
		t.Fatalf("status %s, want STOP in /status and in offsetstore_status", o.Status)
	}
	if value(exporter.MetricUp) != 1 {
		t.Fatal("offsetstore_up is not 1")
	}
	for _, name := range exporter.Names {
		if _, ok := families[name]; !ok {
			t.Fatalf("/metrics lacks %s", name)
		}
	}
	page := mustGet(t, s.base+"/")
	if !strings.Contains(page, `data-outbox="orders" data-status="STOP"`) || strings.Contains(page, "<script") {
		t.Fatalf("/ does not show orders as STOP, or has a script:\n%s", page)
	}
	if code, _ := get(t, s.base+"/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope: %d, want 404", code)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve stopped with exit status %d, want 0\nstderr: %s", code, s.stderr)
	}
	if code, _ := get(t, s.base+"/healthz"); code != 0 {
		t.Fatalf("GET /healthz after the stop answered %d: the server still listens", code)
	}
	if !strings.Contains(s.stdout.String(), "stopped") {
		t.Fatalf("stdout: %s", s.stdout)
	}
}

// newFixtureEmpty is a fresh migrated database without rows.
func newFixtureEmpty(t *testing.T) *testdb.DB {
	t.Helper()
	return testdb.New(t)
}

// insertEvents writes events from..to of pid, written at at.
func insertEvents(t *testing.T, db *testdb.DB, pid string, from, to uint64, at time.Time) {
	t.Helper()
	if _, err := db.Pool.Exec(t.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at)
		SELECT $1, g, '\x00'::bytea, $4 FROM generate_series($2::bigint, $3::bigint) AS g`, pid, int64(from), int64(to), at); err != nil {
		t.Fatalf("insert events of %s: %v", pid, err)
	}
}
