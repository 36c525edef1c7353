package exporter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/monitor"
)

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 850 * time.Millisecond: "850ms", 42 * time.Second: "42s",
		3*time.Minute + 5*time.Second: "3m05s", 2*time.Hour + 10*time.Minute: "2h10m", 76 * time.Hour: "3d4h",
	} {
		if got := Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLagChart(t *testing.T) {
	c := lagChart([]monitor.Point{{Lag: 0}, {Lag: 5}, {Lag: 10}})
	if c.Max != 10 || c.Points != "0.0,31.0 80.0,16.0 160.0,1.0" {
		t.Fatalf("chart %+v", c)
	}
	if c := lagChart([]monitor.Point{{Lag: 3}}); !strings.Contains(c.Points, " ") {
		t.Fatalf("a single point is not drawn as a segment: %q", c.Points)
	}
}

func TestPageEscapesAndSummarises(t *testing.T) {
	var b strings.Builder
	reports := []monitor.Report{
		{Figures: monitor.Figures{Outbox: `<b>"x"</b>`, Found: true, Lag: 3}, Status: monitor.StatusOK},
		{Figures: monitor.Figures{Outbox: "y", Err: errors.New("boom")}, Status: monitor.StatusErr, Reason: "boom <i>"},
	}
	if err := WritePage(&b, reports, errors.New("poll <failed>"), PageConfig{Interval: 1500 * time.Millisecond, Rules: monitor.Rules{Window: 3, StopAfter: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"1 of 2 outboxes not OK", `content="2"`, "&lt;b&gt;", "boom &lt;i&gt;", "poll &lt;failed&gt;", `data-status="ERR"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<b>") || strings.Contains(page, "<script") {
		t.Fatalf("page has unescaped markup or a script:\n%s", page)
	}
	b.Reset()
	if err := WritePage(&b, nil, nil, PageConfig{Interval: time.Second}); err != nil || !strings.Contains(b.String(), "no-outboxes") {
		t.Fatalf("empty page: %v\n%s", err, b.String())
	}
}
