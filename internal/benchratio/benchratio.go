// Package benchratio runs a benchmark beside its baseline in the same run
// and prints their ratio, so that speed is judged relative to raw pgx on
// the same machine at the same moment rather than in absolute numbers.
//
// Each comparison prints one line:
//
//	ratio name=<name> value=<subject/baseline ns per op> goal=<goal> met=<yes|no>
package benchratio

import (
	"fmt"
	"testing"
)

// Case is one side of a comparison.
type Case struct {
	Name string
	F    func(b *testing.B)
}

// Goal says what the ratio subject/baseline (of ns per op) should be.
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

func (g Goal) met(r float64) bool {
	return (g.Max == 0 || r <= g.Max) && (g.Min == 0 || r >= g.Min)
}

// Compare runs subject and baseline as sub-benchmarks of b, alternating
// them rounds times (to spread machine noise over both), and prints the
// ratio of their mean ns/op. name names the ratio.
func Compare(b *testing.B, name string, goal Goal, rounds int, subject, baseline Case) float64 {
	b.Helper()
	// b.Run calls F several times while it sizes b.N; the last call, with
	// the final b.N, is the measurement. Rounds are averaged.
	var subj, base float64
	if rounds < 1 {
		rounds = 1
	}
	perOp := func(b *testing.B) float64 { return float64(b.Elapsed()) / float64(max(b.N, 1)) }
	for i := range rounds {
		suffix := ""
		if rounds > 1 {
			suffix = fmt.Sprintf("/round=%d", i+1)
		}
		var s, bl float64
		b.Run(subject.Name+suffix, func(b *testing.B) { subject.F(b); s = perOp(b) })
		b.Run(baseline.Name+suffix, func(b *testing.B) { baseline.F(b); bl = perOp(b) })
		subj += s / float64(rounds)
		base += bl / float64(rounds)
	}
	if subj == 0 || base == 0 {
		return 0
	}
	r := subj / base
	met := "no"
	if goal.met(r) {
		met = "yes"
	}
	fmt.Printf("ratio name=%s value=%.3f goal=%s met=%s (%s %.0f ns/op, %s %.0f ns/op)\n",
		name, r, goal, met, subject.Name, subj, baseline.Name, base)
	return r
}
