package monitor_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/monitor"
)

func TestEvaluate(t *testing.T) {
	t.Parallel()
	rules := monitor.Rules{Window: 3, StopAfter: time.Minute}
	ok := monitor.Figures{Found: true}
	lag := func(n uint64) monitor.Figures {
		return monitor.Figures{Found: true, Lag: n, LagTime: time.Second, SnapshotAge: time.Second}
	}
	old := time.Hour
	for _, tc := range []struct {
		name  string
		polls []monitor.Figures
		want  monitor.Status
		why   string
	}{
		{"no polls", nil, monitor.StatusNotFound, "not polled"},
		{"not found", []monitor.Figures{{}}, monitor.StatusNotFound, "no snapshot"},
		{"error", []monitor.Figures{ok, {Err: errors.New("corrupt")}}, monitor.StatusErr, "corrupt"},
		{"quiet, snapshot old", []monitor.Figures{{Found: true, SnapshotAge: old}}, monitor.StatusOK, ""},
		{"dead: waiting long, no snapshot", []monitor.Figures{{Found: true, Lag: 5, LagTime: old, SnapshotAge: old}}, monitor.StatusStop, "5 events wait"},
		{"events just arrived after a quiet hour", []monitor.Figures{{Found: true, Lag: 5, LagTime: time.Second, SnapshotAge: old}}, monitor.StatusOK, ""},
		{"old events, but the relay saves", []monitor.Figures{{Found: true, Lag: 5, LagTime: old, SnapshotAge: time.Second}}, monitor.StatusOK, ""},
		{"lag grew at every poll", []monitor.Figures{lag(1), lag(2), lag(3)}, monitor.StatusWarn, "from 1 to 3"},
		{"window not full", []monitor.Figures{lag(1), lag(2)}, monitor.StatusOK, ""},
		{"lag flat once", []monitor.Figures{lag(1), lag(1), lag(3)}, monitor.StatusOK, ""},
		{"older polls than the window", []monitor.Figures{lag(9), lag(1), lag(2), lag(3)}, monitor.StatusWarn, ""},
		{"rewound in the window", []monitor.Figures{ok, {Found: true, Rewound: 2}, ok}, monitor.StatusRewind, "2 keys"},
		{"rewound before the window", []monitor.Figures{{Found: true, Rewound: 2}, ok, ok, ok}, monitor.StatusOK, ""},
		{"stop beats rewind", []monitor.Figures{{Found: true, Rewound: 1}, {Found: true, Lag: 5, LagTime: old, SnapshotAge: old}}, monitor.StatusStop, ""},
		{"a failed poll breaks the growth", []monitor.Figures{lag(1), {Err: errors.New("x")}, lag(3)}, monitor.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := monitor.Evaluate(tc.polls, rules)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Fatalf("Evaluate = %s (%q), want %s (%q)", got, why, tc.want, tc.why)
			}
		})
	}
}
