// Package benchratio runs a benchmark beside its baseline in the same run
// and prints their ratio, so that speed is judged relative to raw pgx on
// the same machine at the same moment rather than in absolute numbers.
//
// The two sides alternate within one benchmark loop, operation by
// operation (a then b, then b then a, …), each timed on its own: on a
// shared machine, load that comes and goes slows both sides alike instead
// of skewing the ratio. Each comparison prints one line:
//
//	ratio name=<name> value=<a/b of the median ns per op> goal=<goal> met=<yes|no>
package benchratio

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Side is one of the two operations a comparison alternates.
type Side struct {
	Name string
	Op   func(ctx context.Context) error
	// Setup, when not nil, runs before every call of Op, untimed: it
	// prepares the call's input (the offsets a Save is given, say), which
	// is the caller's work and not the operation's.
	Setup func() error
}

// Goal says what the ratio should be.
type Goal struct {
	// Max is the highest acceptable ratio (0: none).
	Max float64
	// Min is the lowest acceptable ratio (0: none).
	Min float64
}

func (g Goal) String() string {
	switch {
	case g.Max > 0 && g.Min > 0:
		return fmt.Sprintf("%.2f..%.2f", g.Min, g.Max)
	case g.Max > 0:
		return fmt.Sprintf("<=%.2f", g.Max)
	case g.Min > 0:
		return fmt.Sprintf(">=%.2f", g.Min)
	}
	return "report"
}

// Met reports whether r meets the goal.
func (g Goal) Met(r float64) bool {
	return (g.Max == 0 || r <= g.Max) && (g.Min == 0 || r >= g.Min)
}

// Alternate runs a and c alternately, reps times each per iteration of
// b.Loop, after one warm-up call of each. It reports "<side>-ns/op" (the
// mean) and "<side>-median-ns/op" for both, and "<side>-<unit>/s" (of the
// median) when perOp (units per operation, e.g. rows) is not 0, and
// returns the median ns/op of each: on a shared machine an operation now
// and then stalls behind other work, which moves a mean far more than a
// median, and the ratio of medians is what a typical call costs.
func Alternate(b *testing.B, reps int, perOp float64, unit string, a, c Side) (nsA, nsC float64) {
	b.Helper()
	ctx := context.Background()
	for _, s := range []Side{a, c} {
		if s.Setup != nil {
			if err := s.Setup(); err != nil {
				b.Fatalf("%s: setup: %v", s.Name, err)
			}
		}
		if err := s.Op(ctx); err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
	}
	var durA, durC time.Duration
	var opsA, opsC []time.Duration
	run := func(s Side, d *time.Duration, ops *[]time.Duration) {
		if s.Setup != nil {
			b.StopTimer()
			err := s.Setup()
			b.StartTimer()
			if err != nil {
				b.Fatalf("%s: setup: %v", s.Name, err)
			}
		}
		start := time.Now()
		if err := s.Op(ctx); err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		took := time.Since(start)
		*d += took
		*ops = append(*ops, took)
	}
	reps = max(reps, 1)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		for range reps {
			if i%2 == 0 {
				run(a, &durA, &opsA)
				run(c, &durC, &opsC)
			} else {
				run(c, &durC, &opsC)
				run(a, &durA, &opsA)
			}
			i++
		}
	}
	n := float64(b.N * reps)
	b.ReportMetric(float64(durA.Nanoseconds())/n, a.Name+"-ns/op")
	b.ReportMetric(float64(durC.Nanoseconds())/n, c.Name+"-ns/op")
	nsA, nsC = median(opsA), median(opsC)
	b.ReportMetric(nsA, a.Name+"-median-ns/op")
	b.ReportMetric(nsC, c.Name+"-median-ns/op")
	if perOp > 0 {
		b.ReportMetric(perOp*1e9/nsA, a.Name+"-"+unit+"/s")
		b.ReportMetric(perOp*1e9/nsC, c.Name+"-"+unit+"/s")
	}
	return nsA, nsC
}

// median returns the median of ds in nanoseconds. ds is reordered.
func median(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	m := len(ds) / 2
	if len(ds)%2 == 1 {
		return float64(ds[m].Nanoseconds())
	}
	return float64((ds[m-1] + ds[m]).Nanoseconds()) / 2
}

// Print prints num/den as a ratio line and returns the ratio.
func Print(name string, num, den float64, goal Goal) float64 {
	r := num / den
	met := "no"
	if goal.Met(r) {
		met = "yes"
	}
	fmt.Printf("ratio name=%s value=%.3f goal=%s met=%s\n", name, r, goal, met)
	return r
}
