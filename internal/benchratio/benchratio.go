// Package benchratio runs a benchmark beside its baseline in the same run
// and prints their ratio, so that speed is judged relative to raw pgx on
// the same machine at the same moment rather than in absolute numbers.
//
// The two sides alternate within one benchmark loop, operation by
// operation (a then b, then b then a, …), each timed on its own: on a
// shared machine, load that comes and goes slows both sides alike instead
// of skewing the ratio. Each comparison prints one line:
//
//	ratio name=<name> value=<a/b of ns per op> goal=<goal> met=<yes|no>
package benchratio

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Side is one of the two operations a comparison alternates.
type Side struct {
	Name string
	Op   func(ctx context.Context) error
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
// b.Loop, after one warm-up call of each. It reports "<side>-ns/op" for
// both, and "<side>-<unit>/s" when perOp (units per operation, e.g. rows)
// is not 0, and returns the mean ns/op of each.
func Alternate(b *testing.B, reps int, perOp float64, unit string, a, c Side) (nsA, nsC float64) {
	b.Helper()
	ctx := context.Background()
	for _, s := range []Side{a, c} {
		if err := s.Op(ctx); err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
	}
	var durA, durC time.Duration
	run := func(s Side, d *time.Duration) {
		start := time.Now()
		if err := s.Op(ctx); err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		*d += time.Since(start)
	}
	reps = max(reps, 1)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		for range reps {
			if i%2 == 0 {
				run(a, &durA)
				run(c, &durC)
			} else {
				run(c, &durC)
				run(a, &durA)
			}
			i++
		}
	}
	n := float64(b.N * reps)
	nsA, nsC = float64(durA.Nanoseconds())/n, float64(durC.Nanoseconds())/n
	b.ReportMetric(nsA, a.Name+"-ns/op")
	b.ReportMetric(nsC, c.Name+"-ns/op")
	if perOp > 0 {
		b.ReportMetric(perOp*1e9/nsA, a.Name+"-"+unit+"/s")
		b.ReportMetric(perOp*1e9/nsC, c.Name+"-"+unit+"/s")
	}
	return nsA, nsC
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
