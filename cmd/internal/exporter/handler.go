package exporter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outboxkit/offsetstore/monitor"
)

// Exporter serves a monitor's reports over HTTP.
type Exporter struct {
	m        *monitor.Monitor
	cfg      PageConfig
	lastPoll atomic.Int64 // ns the last poll took
	mux      *http.ServeMux
}

// New returns the exporter of m, which the caller polls every
// cfg.Interval (telling Observe how long each poll took).
func New(m *monitor.Monitor, cfg PageConfig) *Exporter {
	e := &Exporter{m: m, cfg: cfg, mux: http.NewServeMux()}
	reg := NewRegistry(m, func() time.Duration { return time.Duration(e.lastPoll.Load()) })
	e.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	e.mux.HandleFunc("GET /status", e.status)
	e.mux.HandleFunc("GET /healthz", e.healthz)
	e.mux.HandleFunc("GET /{$}", e.page)
	return e
}

// ServeHTTP serves GET /metrics, /status, /healthz and / (the page).
func (e *Exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

// Observe records the duration of a poll the caller ran.
func (e *Exporter) Observe(d time.Duration) { e.lastPoll.Store(int64(d)) }

// pollErr is the last poll's error, nil before the first (the page and
// /status say "never" then).
func (e *Exporter) pollErr() error {
	err := e.m.Err()
	if errors.Is(err, monitor.ErrNotPolled) {
		return nil
	}
	return err
}

func (e *Exporter) status(w http.ResponseWriter, _ *http.Request) {
	d := Doc(e.m.Reports(), e.cfg.Rules, e.cfg.Unseen, e.pollErr())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(d) // a write error is the client's going away
}

func (e *Exporter) page(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := WritePage(&b, e.m.Reports(), e.pollErr(), e.cfg); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// healthz is the exporter's own health: 200 once a poll has read the
// journal and while the last one did, 503 otherwise. An outbox's status
// does not make it fail: alert on offsetstore_status for that.
func (e *Exporter) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := e.m.Err(); err != nil {
		http.Error(w, fmt.Sprintf("not ready: %v", err), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}
