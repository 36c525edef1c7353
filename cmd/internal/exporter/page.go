package exporter

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/outboxkit/offsetstore/monitor"
)

//go:embed page.html
var pageHTML string

// page is the status page's template: server-rendered, no script, nothing
// fetched; it reloads itself every poll interval.
var page = template.Must(template.New("page").Parse(pageHTML))

// PageConfig is what the status page says of the exporter.
type PageConfig struct {
	Interval time.Duration
	Rules    monitor.Rules
	Unseen   monitor.Unseen
}

type pageData struct {
	Summary, PolledAt, Interval, StopAfter, Unseen, Error string
	Refresh, Window                                       int
	Rows                                                  []pageRow
}

type pageRow struct {
	Name, Status, Reason, LagTime, SnapshotAge, Keys, Lag string
	Chart                                                 chart
}

// chart is the lag over the window as a polyline.
type chart struct {
	Width, Height int
	Max           uint64
	Points        string
}

const chartWidth, chartHeight = 160, 32

func lagChart(points []monitor.Point) chart {
	c := chart{Width: chartWidth, Height: chartHeight}
	for _, p := range points {
		c.Max = max(c.Max, p.Lag)
	}
	var b strings.Builder
	for i, p := range points {
		x := 0.0
		if len(points) > 1 {
			x = float64(i) * chartWidth / float64(len(points)-1)
		}
		y := float64(chartHeight - 1)
		if c.Max > 0 {
			y = float64(chartHeight-1) - float64(p.Lag)/float64(c.Max)*float64(chartHeight-2)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x, y)
	}
	if len(points) == 1 { // a dot wide enough to see
		fmt.Fprintf(&b, " %d,%s", 4, strings.SplitN(b.String(), ",", 2)[1])
	}
	c.Points = b.String()
	return c
}

// WritePage renders the status page of reports.
func WritePage(w io.Writer, reports []monitor.Report, pollErr error, cfg PageConfig) error {
	d := pageData{
		Interval:  cfg.Interval.String(),
		Refresh:   max(1, int(math.Ceil(cfg.Interval.Seconds()))),
		Window:    cfg.Rules.Window,
		StopAfter: cfg.Rules.StopAfter.String(),
		Unseen:    cfg.Unseen.String(),
		PolledAt:  "never",
	}
	if pollErr != nil {
		d.Error = pollErr.Error()
	}
	notOK := 0
	for _, r := range reports {
		d.PolledAt = r.At.UTC().Format(time.RFC3339)
		row := pageRow{Name: r.Outbox, Status: string(r.Status), Reason: r.Reason, Chart: lagChart(r.Window), Lag: "–", LagTime: "–", SnapshotAge: "–", Keys: "–"}
		if r.Err == nil && r.Found {
			row.Lag = strconv.FormatUint(r.Lag, 10)
			row.LagTime = Age(r.LagTime)
			row.SnapshotAge = Age(r.SnapshotAge)
			row.Keys = strconv.Itoa(r.Keys)
		}
		if r.Status != monitor.StatusOK {
			notOK++
		}
		d.Rows = append(d.Rows, row)
	}
	switch {
	case len(reports) == 0:
		d.Summary = "no outbox"
	case notOK == 0:
		d.Summary = fmt.Sprintf("%d outboxes, all OK", len(reports))
	default:
		d.Summary = fmt.Sprintf("%d of %d outboxes not OK", notOK, len(reports))
	}
	return page.Execute(w, d)
}

// Age prints a duration for a person: 0s, 850ms, 42s, 3m05s, 2h10m, 3d4h.
func Age(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
