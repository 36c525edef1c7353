package exporter

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxkit/offsetstore/monitor"
)

// Metric names, as DESIGN fixes them (outside checks use them).
const (
	MetricLag          = "offsetstore_lag_events"
	MetricLagMax       = "offsetstore_lag_max_events"
	MetricLagSeconds   = "offsetstore_lag_seconds"
	MetricSnapshotAge  = "offsetstore_snapshot_age_seconds"
	MetricSnapshotSeq  = "offsetstore_snapshot_sequence_nr"
	MetricKeys         = "offsetstore_keys"
	MetricStatus       = "offsetstore_status"
	MetricUnseen       = "offsetstore_unseen_streams"
	MetricUp           = "offsetstore_up"
	MetricPollDuration = "offsetstore_poll_duration_seconds"
	labelOutbox        = "outbox"
	labelStatus        = "status"
	helpLagSeconds     = "Age in seconds of the oldest event not yet published: now - written_at of the first event above each key's offset, the oldest over keys; 0 when nothing waits."
	helpSnapshotAge    = "Seconds since the newest snapshot of the outbox was written."
	helpStatus         = "Status of the outbox (OK, WARN, STOP, REWIND, ERR, NOTFOUND): 1 for the current one, 0 for the others."
	helpLag            = "Events not yet published: the sum over keys of the stream's highest sequence number - the key's offset, where positive."
	helpLagMax         = "The largest lag of one key of the outbox, in events."
	helpSnapshotSeq    = "Sequence number of the newest snapshot of the outbox."
	helpKeys           = "Keys (source streams) in the newest snapshot of the outbox."
	helpUnseen         = "Source streams with events that the outbox has no key for, counted in the lag."
	helpUp             = "1 when the exporter's last poll read the journal, 0 when it failed."
	helpPollDuration   = "Seconds the exporter's last poll took."
)

var (
	descLag         = prometheus.NewDesc(MetricLag, helpLag, []string{labelOutbox}, nil)
	descLagMax      = prometheus.NewDesc(MetricLagMax, helpLagMax, []string{labelOutbox}, nil)
	descLagSeconds  = prometheus.NewDesc(MetricLagSeconds, helpLagSeconds, []string{labelOutbox}, nil)
	descSnapshotAge = prometheus.NewDesc(MetricSnapshotAge, helpSnapshotAge, []string{labelOutbox}, nil)
	descSnapshotSeq = prometheus.NewDesc(MetricSnapshotSeq, helpSnapshotSeq, []string{labelOutbox}, nil)
	descKeys        = prometheus.NewDesc(MetricKeys, helpKeys, []string{labelOutbox}, nil)
	descUnseen      = prometheus.NewDesc(MetricUnseen, helpUnseen, []string{labelOutbox}, nil)
	descStatus      = prometheus.NewDesc(MetricStatus, helpStatus, []string{labelOutbox, labelStatus}, nil)
	descUp          = prometheus.NewDesc(MetricUp, helpUp, nil, nil)
	descPoll        = prometheus.NewDesc(MetricPollDuration, helpPollDuration, nil, nil)
)

// Source is what the collector reads at each scrape.
type Source interface {
	Reports() []monitor.Report
	Err() error
}

// collector turns the monitor's last reports into metrics at each scrape:
// no state of its own to drift from /status.
type collector struct {
	src      Source
	duration func() time.Duration
}

// NewRegistry returns a registry of its own holding the exporter's
// metrics of src; duration reports how long the last poll took.
func NewRegistry(src Source, duration func() time.Duration) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{src: src, duration: duration})
	return reg
}

// Names are the names of every metric the exporter exports.
var Names = []string{MetricLag, MetricLagMax, MetricLagSeconds, MetricSnapshotAge, MetricSnapshotSeq, MetricKeys, MetricStatus, MetricUnseen, MetricUp, MetricPollDuration}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descLagMax, descLagSeconds, descSnapshotAge, descSnapshotSeq, descKeys, descUnseen, descStatus, descUp, descPoll} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	up := 1.0
	if c.src.Err() != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descPoll, prometheus.GaugeValue, c.duration().Seconds())
	for _, r := range c.src.Reports() {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, r.Outbox)
		}
		for _, s := range monitor.Statuses {
			v := 0.0
			if s == r.Status {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, v, r.Outbox, string(s))
		}
		if r.Err != nil || !r.Found {
			continue // no figures to tell: the status says why
		}
		gauge(descLag, float64(r.Lag))
		gauge(descLagMax, float64(r.LagMax))
		gauge(descLagSeconds, r.LagTime.Seconds())
		gauge(descSnapshotAge, r.SnapshotAge.Seconds())
		gauge(descSnapshotSeq, float64(r.SequenceNr))
		gauge(descKeys, float64(r.Keys))
		gauge(descUnseen, float64(r.Unseen))
	}
}
