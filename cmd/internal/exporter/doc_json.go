package exporter

import (
	"time"

	"github.com/outboxkit/offsetstore/monitor"
)

// StatusDoc is the JSON of GET /status and of `offsetstore status --json`.
type StatusDoc struct {
	PolledAt string      `json:"polled_at"`
	Rules    RulesDoc    `json:"rules"`
	Error    string      `json:"error,omitempty"` // of the last poll, when it failed
	Outboxes []OutboxDoc `json:"outboxes"`
}

// RulesDoc are the thresholds the statuses were judged by.
type RulesDoc struct {
	Window           int     `json:"window"`
	StopAfterSeconds float64 `json:"stop_after_seconds"`
	Unseen           string  `json:"unseen"`
}

// OutboxDoc is one outbox: the figures of the metrics, by the metrics'
// names, and more.
type OutboxDoc struct {
	Outbox             string     `json:"outbox"`
	Status             string     `json:"status"`
	Reason             string     `json:"reason,omitempty"`
	LagEvents          uint64     `json:"lag_events"`
	LagMaxEvents       uint64     `json:"lag_max_events"`
	LagSeconds         float64    `json:"lag_seconds"`
	SnapshotAgeSeconds float64    `json:"snapshot_age_seconds"`
	SnapshotSeqNr      uint64     `json:"snapshot_sequence_nr"`
	SnapshotWrittenAt  string     `json:"snapshot_written_at,omitempty"`
	Writer             string     `json:"writer,omitempty"`
	Mode               string     `json:"mode,omitempty"`
	Keys               int        `json:"keys"`
	UnseenStreams      int        `json:"unseen_streams"`
	Behind             int        `json:"behind"`
	Ahead              int        `json:"ahead"`
	Top                []KeyDoc   `json:"top"`
	Window             []PointDoc `json:"window"`
}

// KeyDoc is one of the keys with the largest lag.
type KeyDoc struct {
	Key          string `json:"key"`
	Offset       uint64 `json:"offset"`
	Highest      uint64 `json:"highest"`
	Lag          int64  `json:"lag"`
	WaitingSince string `json:"waiting_since,omitempty"`
	Unseen       bool   `json:"unseen,omitempty"`
}

// PointDoc is one poll of the window.
type PointDoc struct {
	At         string  `json:"at"`
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
	Status     string  `json:"status"`
}

// Doc builds the StatusDoc of reports, judged by rules with unseen streams
// counted as unseen says.
func Doc(reports []monitor.Report, rules monitor.Rules, unseen monitor.Unseen, pollErr error) StatusDoc {
	d := StatusDoc{
		Rules:    RulesDoc{Window: rules.Window, StopAfterSeconds: rules.StopAfter.Seconds(), Unseen: unseen.String()},
		Outboxes: make([]OutboxDoc, 0, len(reports)),
	}
	if pollErr != nil {
		d.Error = pollErr.Error()
	}
	var at time.Time
	for _, r := range reports {
		at = r.At
		o := OutboxDoc{
			Outbox: r.Outbox, Status: string(r.Status), Reason: r.Reason,
			LagEvents: r.Lag, LagMaxEvents: r.LagMax, LagSeconds: r.LagTime.Seconds(),
			SnapshotAgeSeconds: r.SnapshotAge.Seconds(), SnapshotSeqNr: r.SequenceNr,
			Writer: r.Writer, Keys: r.Keys, UnseenStreams: r.Unseen, Behind: r.Behind, Ahead: r.Ahead,
			Top: make([]KeyDoc, 0, len(r.Top)), Window: make([]PointDoc, 0, len(r.Window)),
		}
		if r.Found {
			o.SnapshotWrittenAt, o.Mode = timeText(r.SnapshotWrittenAt), r.Mode.String()
		}
		for _, k := range r.Top {
			o.Top = append(o.Top, KeyDoc{Key: k.Key, Offset: k.Offset, Highest: k.Highest, Lag: k.Lag, WaitingSince: timeText(k.WrittenAt), Unseen: k.Unseen})
		}
		for _, p := range r.Window {
			o.Window = append(o.Window, PointDoc{At: timeText(p.At), LagEvents: p.Lag, LagSeconds: p.LagTime.Seconds(), Status: string(p.Status)})
		}
		d.Outboxes = append(d.Outboxes, o)
	}
	d.PolledAt = timeText(at)
	return d
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
