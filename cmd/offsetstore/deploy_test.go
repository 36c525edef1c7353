package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/cmd/internal/exporter"
)

var (
	dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "offsetstore.json")
	rulesFile     = filepath.Join("..", "..", "deploy", "prometheus", "offsetstore-rules.yml")
	metricName    = regexp.MustCompile(`\boffsetstore_[a-z_]+\b`)
)

// promtool returns Prometheus's promtool, failing the test (never
// skipping it) when there is none.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("this test needs promtool on PATH: install Debian's prometheus package (apt-get install -y prometheus; .ci/run does)")
	}
	return p
}

// exprs collects the value of every "expr" and "query" string of a JSON
// document.
func exprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "expr" || k == "definition") {
				*out = append(*out, s)
			}
			exprs(e, out)
		}
	case []any:
		for _, e := range x {
			exprs(e, out)
		}
	}
}

// Every query of the Grafana dashboard names metrics the exporter
// exports, and the dashboard shows lag, lag time and status.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	var queries []string
	exprs(dash, &queries)
	if len(queries) < 5 {
		t.Fatalf("the dashboard has %d queries: %q", len(queries), queries)
	}
	used := map[string]bool{}
	for _, q := range queries {
		names := metricName.FindAllString(q, -1)
		if len(names) == 0 {
			t.Fatalf("query %q names no offsetstore metric", q)
		}
		for _, n := range names {
			if !slices.Contains(exporter.Names, n) {
				t.Fatalf("query %q names %s, which the exporter does not export (it exports %v)", q, n, exporter.Names)
			}
			used[n] = true
		}
	}
	for _, n := range []string{exporter.MetricLag, exporter.MetricLagSeconds, exporter.MetricStatus} {
		if !used[n] {
			t.Fatalf("the dashboard does not show %s", n)
		}
	}
}

// The alert rules pass promtool and name exported metrics.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricName.FindAllString(string(b), -1) {
		if !slices.Contains(exporter.Names, n) {
			t.Fatalf("the rules name %s, which the exporter does not export", n)
		}
	}
}

// GET /metrics of a running serve passes promtool check metrics.
func TestMetricsPassPromtool(t *testing.T) {
	t.Parallel()
	tool := promtool(t)
	f := newFixture(t)
	s := startServe(t, f.db.URL, "--interval", "1s")
	metrics := mustGet(t, s.base+"/metrics")
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\nof:\n%s", err, out, metrics)
	}
}
