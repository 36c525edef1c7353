package reliability

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// EnvFiguresFile names a file that every figure line is appended to.
const EnvFiguresFile = "OFFSETSTORE_FIGURES_FILE"

// Fig is one measured figure.
type Fig struct {
	Name  string
	Value float64
	Unit  string
}

// String formats f as the figure line: figure name=… value=… unit=….
func (f Fig) String() string {
	return fmt.Sprintf("figure name=%s value=%s unit=%s", f.Name, formatValue(f.Value), f.Unit)
}

func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

var (
	mu      sync.Mutex
	figures []Fig
)

// Figure records a figure of t: it logs it, prints the figure line on
// stdout, keeps it for Figures and appends it to $OFFSETSTORE_FIGURES_FILE.
func Figure(t testing.TB, name string, value float64, unit string) {
	t.Helper()
	f := Fig{Name: name, Value: value, Unit: unit}
	line := f.String()
	t.Log(line)
	mu.Lock()
	defer mu.Unlock()
	figures = append(figures, f)
	fmt.Println(line)
	if path := os.Getenv(EnvFiguresFile); path != "" {
		file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Errorf("reliability: open $%s: %v", EnvFiguresFile, err)
			return
		}
		_, err = fmt.Fprintln(file, line)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Errorf("reliability: write $%s: %v", EnvFiguresFile, err)
		}
	}
}

// Figures returns the figures recorded so far by this test binary.
func Figures() []Fig {
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(figures)
}

// Millis converts d to milliseconds, for figures.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// EnvInt returns the integer in environment variable name, or def when it
// is unset. A value that is not a positive integer fails the test: a long
// run must never quietly fall back to the short one.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("$%s = %q: want a positive integer", name, s)
	}
	return n
}

// EnvDuration returns the duration in environment variable name (as
// time.ParseDuration reads it), or def when it is unset. A value that is
// not a positive duration fails the test.
func EnvDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("$%s = %q: want a positive duration such as 30s", name, s)
	}
	return d
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method, or 0 for none. ds is sorted in place.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	rank = min(max(rank, 1), len(ds))
	return ds[rank-1]
}
