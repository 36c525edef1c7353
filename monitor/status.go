package monitor

import (
	"fmt"
	"time"
)

// Status is the health of one outbox, in Burrow's words.
type Status string

const (
	// StatusOK: the relay keeps up, or nothing waits.
	StatusOK Status = "OK"
	// StatusWarn: the lag grew at every poll of a full window: the relay
	// is slower than its producers.
	StatusWarn Status = "WARN"
	// StatusStop: events wait, the oldest for longer than the STOP
	// threshold, and no snapshot was written for longer than it: the relay
	// is dead or stuck.
	StatusStop Status = "STOP"
	// StatusRewind: an offset went down (or a key was dropped) within the
	// window: an operator's rewind or forget.
	StatusRewind Status = "REWIND"
	// StatusErr: the outbox's snapshot or its streams cannot be read.
	StatusErr Status = "ERR"
	// StatusNotFound: no snapshot of the outbox is in the journal.
	StatusNotFound Status = "NOTFOUND"
)

// Statuses are every status, in the order of the exporter's metrics.
var Statuses = []Status{StatusOK, StatusWarn, StatusRewind, StatusStop, StatusErr, StatusNotFound}

// Rules are the thresholds of Evaluate.
type Rules struct {
	// Window is the number of polls a status looks back over, the current
	// one included: WARN needs Window polls whose lag grew at each, REWIND
	// holds for Window polls after the one that saw the offset go down.
	// At least 2. Defaults to DefaultWindow.
	Window int
	// StopAfter is the STOP threshold: events wait, the oldest for longer
	// than StopAfter, and the newest snapshot is older than StopAfter.
	// Defaults to DefaultStopAfter.
	StopAfter time.Duration
}

const (
	// DefaultWindow is Rules.Window when 0: with the exporter's default
	// interval (15 s), 2½ minutes.
	DefaultWindow = 10
	// DefaultStopAfter is Rules.StopAfter when 0. A live relay saves at
	// least once per commit interval (1 s by default) while it publishes.
	DefaultStopAfter = 2 * time.Minute
)

func (r Rules) withDefaults() Rules {
	if r.Window == 0 {
		r.Window = DefaultWindow
	}
	if r.StopAfter == 0 {
		r.StopAfter = DefaultStopAfter
	}
	return r
}

func (r Rules) validate() error {
	if r.Window < 2 {
		return fmt.Errorf("%w: window of %d polls, want at least 2", ErrInvalidOption, r.Window)
	}
	if r.StopAfter <= 0 {
		return fmt.Errorf("%w: STOP threshold %v, want more than 0", ErrInvalidOption, r.StopAfter)
	}
	return nil
}

// Evaluate returns the status of an outbox from its polls, oldest first,
// the last one current (only the last rules.Window count), with a
// sentence that says why. The first rule that holds decides:
//
//  1. ERR: the current poll could not read the outbox (Figures.Err).
//  2. NOTFOUND: the current poll found no snapshot.
//  3. STOP: events wait (Lag > 0), the oldest for longer than StopAfter
//     (LagTime), and the newest snapshot is older than StopAfter. A quiet
//     outbox, nothing waiting, is never STOP however old its snapshot is;
//     a relay that died with events waiting is STOP once both clocks pass
//     the threshold, whether the events wait in streams it has keys for or
//     in streams it has not seen yet (see Unseen).
//  4. REWIND: a poll of the window saw offsets go down or keys dropped
//     (Figures.Rewound) since the poll before.
//  5. WARN: the window is full and the lag grew at each of its polls.
//  6. OK.
//
// No polls is NOTFOUND. Evaluate is a pure function: a service with a
// health endpoint of its own can keep the polls and call it.
func Evaluate(polls []Figures, rules Rules) (Status, string) {
	rules = rules.withDefaults()
	if len(polls) == 0 {
		return StatusNotFound, "not polled yet"
	}
	if len(polls) > rules.Window {
		polls = polls[len(polls)-rules.Window:]
	}
	cur := polls[len(polls)-1]
	switch {
	case cur.Err != nil:
		return StatusErr, cur.Err.Error()
	case !cur.Found:
		return StatusNotFound, "no snapshot of the outbox in the journal"
	case cur.Lag > 0 && cur.LagTime > rules.StopAfter && cur.SnapshotAge > rules.StopAfter:
		return StatusStop, fmt.Sprintf("%d events wait, the oldest for %v, and the newest snapshot is %v old (threshold %v)",
			cur.Lag, round(cur.LagTime), round(cur.SnapshotAge), rules.StopAfter)
	}
	for i := len(polls) - 1; i >= 0; i-- {
		if p := polls[i]; p.Rewound > 0 {
			return StatusRewind, fmt.Sprintf("%d keys went down or were dropped at snapshot %d, %d polls ago", p.Rewound, p.SequenceNr, len(polls)-1-i)
		}
	}
	if len(polls) == rules.Window && grew(polls) {
		return StatusWarn, fmt.Sprintf("the lag grew at each of the last %d polls, from %d to %d events", len(polls), polls[0].Lag, cur.Lag)
	}
	return StatusOK, ""
}

// grew reports whether the lag rose from each poll to the next, every
// poll a reading (no error, found).
func grew(polls []Figures) bool {
	for i, p := range polls {
		if p.Err != nil || !p.Found || (i > 0 && p.Lag <= polls[i-1].Lag) {
			return false
		}
	}
	return true
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
