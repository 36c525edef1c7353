package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/outboxkit/offsetstore/monitor"
)

// monitorFlags are the flags status and serve share.
type monitorFlags struct {
	stopAfter time.Duration
	unseen    string
	top       int
}

func (f *monitorFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.stopAfter, "stop-after", monitor.DefaultStopAfter,
		"STOP threshold: events wait, the oldest for longer than this, and no snapshot was written for as long")
	fs.StringVar(&f.unseen, "unseen", "count",
		"streams with events that no outbox has a key for: count (as a key at offset 0 of the outbox whose keys are nearest: a dead relay whose events wait in new streams is not OK) or ignore (for a journal with streams no relay follows)")
	fs.IntVar(&f.top, "top", monitor.DefaultTop, "name the N keys with the largest lag (JSON and /status)")
}

// options returns the monitor's options for a window of polls.
func (f *monitorFlags) options(window int, outboxes []string) ([]monitor.Option, monitor.Unseen, error) {
	unseen, err := monitor.ParseUnseen(f.unseen)
	if err != nil {
		return nil, 0, usageErrorf("--unseen %q: want count or ignore", f.unseen)
	}
	if f.stopAfter <= 0 {
		return nil, 0, usageErrorf("--stop-after %v: want more than 0", f.stopAfter)
	}
	if f.top < 0 {
		return nil, 0, usageErrorf("--top %d: want 0 or more", f.top)
	}
	for _, name := range outboxes {
		if err := checkOutbox(name); err != nil {
			return nil, 0, err
		}
	}
	opts := []monitor.Option{
		monitor.WithRules(monitor.Rules{Window: window, StopAfter: f.stopAfter}),
		monitor.WithUnseen(unseen),
		monitor.WithTop(f.top),
	}
	if len(outboxes) > 0 {
		opts = append(opts, monitor.WithOutboxes(outboxes...))
	}
	return opts, unseen, nil
}
