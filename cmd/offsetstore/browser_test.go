package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// envChromium names the browser the page test runs; envArtifacts the
// directory its screenshot is kept in (default tmp/artifacts at the
// repository's root, which git ignores).
const (
	envChromium  = "OFFSETSTORE_CHROMIUM"
	envArtifacts = "OFFSETSTORE_ARTIFACTS"
)

// chromium returns the headless browser, failing the test (never skipping
// it) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("the status page test needs a headless Chromium and found none on PATH: install Debian's package " +
		"(apt-get update && apt-get install -y chromium; .ci/run does) or set $" + envChromium + " to the browser's path")
	return ""
}

// browse runs the browser headless on u with extra arguments and returns
// its standard output.
func browse(t *testing.T, browser, u string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}, args...)
	cmd := exec.CommandContext(ctx, browser, append(all, u)...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %v: %v\n%s", browser, args, err, stderr)
	}
	return string(out)
}

// artifacts is the directory CI keeps files of the tests in.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		dir = filepath.Join("..", "..", "tmp", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// The status page in a real browser: headless Chromium loads it from a
// running serve on PostgreSQL; the rendered DOM has a row per outbox with
// its status, and a screenshot is kept (go test -run TestStatusPageInBrowser
// -update also writes docs/status-page.png, the README's picture).
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	db := newFixtureEmpty(t)
	ctx := t.Context()
	j := pgjournal.New(db.Pool)
	old := time.Now().Add(-10 * time.Minute)

	// orders-to-kafka: a relay that died 10 minutes ago with events waiting.
	insertEvents(t, db, "order-1", 1, 40, old)
	insertEvents(t, db, "order-2", 1, 25, old)
	s, err := store.Open(ctx, j, "orders-to-kafka")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, map[string]uint64{"order-1": 12, "order-2": 25}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE journal SET written_at = $1 WHERE persistence_id = $2`, old, s.PersistenceID()); err != nil {
		t.Fatal(err)
	}
	// billing-to-ledger: keeps up.
	insertEvents(t, db, "invoice-1", 1, 9, time.Now())
	b, err := store.Open(ctx, j, "billing-to-ledger")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, map[string]uint64{"invoice-1": 9}); err != nil {
		t.Fatal(err)
	}
	// audit-to-s3: a snapshot that cannot be decoded.
	if err := j.Append(ctx, journal.Event{PersistenceID: store.PersistenceID("audit-to-s3"), SequenceNr: 1, Payload: []byte{9, 9}, Manifest: codec.Manifest}); err != nil {
		t.Fatal(err)
	}

	srv := startServe(t, db.URL, "--interval", "300ms", "--window", "8", "--stop-after", "1m", "--unseen", "ignore",
		"orders-to-kafka", "billing-to-ledger", "audit-to-s3", "shipping-to-sqs")
	// A few more events for the chart, then a few polls.
	for i := range 4 {
		insertEvents(t, db, "order-2", uint64(26+i*3), uint64(28+i*3), time.Now())
		time.Sleep(350 * time.Millisecond)
	}

	dom := browse(t, browser, srv.base+"/", "--dump-dom")
	want := map[string]string{
		"orders-to-kafka":   "STOP",
		"billing-to-ledger": "OK",
		"audit-to-s3":       "ERR",
		"shipping-to-sqs":   "NOTFOUND",
	}
	rows := regexp.MustCompile(`<tr class="outbox" data-outbox="([^"]+)" data-status="([^"]+)">`).FindAllStringSubmatch(dom, -1)
	got := map[string]string{}
	for _, r := range rows {
		got[r[1]] = r[2]
	}
	if len(got) != len(want) {
		t.Fatalf("the rendered page has rows %v, want %v\n%s", got, want, dom)
	}
	for name, status := range want {
		if got[name] != status {
			t.Fatalf("row %s has status %q, want %q\n%s", name, got[name], status, dom)
		}
	}
	for _, must := range []string{`class="status s-STOP"`, `<polyline points="`, `http-equiv="refresh"`} {
		if !regexp.MustCompile(regexp.QuoteMeta(must)).MatchString(dom) {
			t.Fatalf("the rendered page lacks %s\n%s", must, dom)
		}
	}
	if regexp.MustCompile(`<script|https?://[^"'<> ]*\.(js|css)`).MatchString(dom) {
		t.Fatalf("the page loads a script or fetches a resource\n%s", dom)
	}

	shot := filepath.Join(artifacts(t), "status-page.png")
	browse(t, browser, srv.base+"/", "--screenshot="+shot, "--window-size=1280,400")
	info, err := os.Stat(shot)
	if err != nil || info.Size() < 5000 {
		t.Fatalf("screenshot %s: %v (%v bytes), want a picture", shot, err, info)
	}
	t.Logf("screenshot of the status page: %s", shot)
	if *update {
		png, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
