package offsetstoreotel_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/offsetstoreotel"
	"github.com/outboxkit/offsetstore/store"
)

func setup(t *testing.T) (*offsetstoreotel.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := offsetstoreotel.New(offsetstoreotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	return m, reader
}

// collect returns the instruments of the reader by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != offsetstoreotel.ScopeName {
			t.Fatalf("scope %q, want %q", sm.Scope.Name, offsetstoreotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// attrs prints an attribute set as k=v,… sorted.
func attrs(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.String())
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func TestSaveInstruments(t *testing.T) {
	t.Parallel()
	m, reader := setup(t)
	ctx := t.Context()
	j := journal.NewMemory()
	a, err := store.Open(ctx, j, "orders", m.StoreOption())
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Open(ctx, j, "orders", m.StoreOption()) // a rival, opened before a's save
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := a.Save(ctx, map[string]uint64{"order-1": uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Save(ctx, map[string]uint64{"order-2": 1}); err == nil {
		t.Fatal("the rival's save was not fenced")
	}
	got := collect(t, reader)

	d, ok := got[offsetstoreotel.InstrumentSaveDuration]
	if !ok || d.Unit != "s" {
		t.Fatalf("%s missing or unit %q, want s", offsetstoreotel.InstrumentSaveDuration, d.Unit)
	}
	counts := map[string]uint64{}
	for _, p := range d.Data.(metricdata.Histogram[float64]).DataPoints {
		counts[attrs(p.Attributes)] += p.Count
		if p.Sum <= 0 || p.Sum > 10 {
			t.Fatalf("duration sum %v s for %s", p.Sum, attrs(p.Attributes))
		}
	}
	want := map[string]uint64{
		"offsetstore.outbox=orders,offsetstore.outcome=ok":     3,
		"offsetstore.outbox=orders,offsetstore.outcome=fenced": 1,
	}
	if len(counts) != len(want) {
		t.Fatalf("duration points %v, want %v", counts, want)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Fatalf("duration points %v, want %v", counts, want)
		}
	}

	s, ok := got[offsetstoreotel.InstrumentSaveSize]
	if !ok || s.Unit != "By" {
		t.Fatalf("%s missing or unit %q, want By", offsetstoreotel.InstrumentSaveSize, s.Unit)
	}
	points := s.Data.(metricdata.Histogram[int64]).DataPoints
	if len(points) != 1 || attrs(points[0].Attributes) != "offsetstore.outbox=orders" || points[0].Count != 4 || mustMin(points[0]) <= 0 {
		t.Fatalf("size points %+v: want one series, outbox only, 4 rows (3 saves and the fenced one's)", points)
	}
}

// mustMin is the smallest value recorded, 0 when none is kept.
func mustMin(p metricdata.HistogramDataPoint[int64]) int64 {
	v, _ := p.Min.Value()
	return v
}

func TestCommitterGauges(t *testing.T) {
	t.Parallel()
	m, reader := setup(t)
	ctx := t.Context()
	st, err := store.Open(ctx, journal.NewMemory(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.NewCommitter(st, store.WithCommitInterval(time.Hour), store.WithCommitEvery(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	stop, err := m.ObserveCommitter("orders", c)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Mark(k, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Track("d", 5); err != nil {
		t.Fatal(err)
	}
	gauge := func(got map[string]metricdata.Metrics, name, unit string) (int64, bool) {
		g, ok := got[name]
		if !ok {
			return 0, false
		}
		if g.Unit != unit {
			t.Fatalf("%s unit %q, want %q", name, g.Unit, unit)
		}
		points := g.Data.(metricdata.Gauge[int64]).DataPoints
		if len(points) == 0 {
			return 0, false
		}
		if len(points) != 1 || attrs(points[0].Attributes) != "offsetstore.outbox=orders" {
			t.Fatalf("%s points %+v, want one with the outbox alone", name, points)
		}
		return points[0].Value, true
	}
	got := collect(t, reader)
	if v, ok := gauge(got, offsetstoreotel.InstrumentCommitterUnsaved, "{key}"); !ok || v != 3 {
		t.Fatalf("unsaved = %d (%v), want 3", v, ok)
	}
	if v, ok := gauge(got, offsetstoreotel.InstrumentCommitterPending, "{event}"); !ok || v != 1 {
		t.Fatalf("pending = %d (%v), want 1", v, ok)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := gauge(collect(t, reader), offsetstoreotel.InstrumentCommitterUnsaved, "{key}"); v != 0 {
		t.Fatalf("unsaved after a flush = %d, want 0", v)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if v, ok := gauge(collect(t, reader), offsetstoreotel.InstrumentCommitterUnsaved, "{key}"); ok {
		t.Fatalf("unsaved observed (%d) after stop", v)
	}
	// The relay's hook shape: the same, and its done function stops it.
	done := m.CommitterHook("orders", c)
	if _, ok := gauge(collect(t, reader), offsetstoreotel.InstrumentCommitterPending, "{event}"); !ok {
		t.Fatal("CommitterHook observes nothing")
	}
	done()
	if _, ok := gauge(collect(t, reader), offsetstoreotel.InstrumentCommitterPending, "{event}"); ok {
		t.Fatal("observed after the hook's done")
	}
	if _, err := m.ObserveCommitter("orders", nil); err == nil {
		t.Fatal("ObserveCommitter(nil) succeeded")
	}
}

// No meter provider: the global one.
func TestGlobalMeterProvider(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp)
	defer otel.SetMeterProvider(prev)
	m, err := offsetstoreotel.New(offsetstoreotel.WithMeterProvider(nil))
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(store.WriteEvent{Outbox: "x", Outcome: store.OutcomeInDoubt, Duration: time.Millisecond})
	got := collect(t, reader)
	p := got[offsetstoreotel.InstrumentSaveDuration].Data.(metricdata.Histogram[float64]).DataPoints
	if len(p) != 1 || attrs(p[0].Attributes) != "offsetstore.outbox=x,offsetstore.outcome=in_doubt" {
		t.Fatalf("points %+v, want one in_doubt of x", p)
	}
	if _, ok := got[offsetstoreotel.InstrumentSaveSize]; ok {
		t.Fatal("a call that sent no row recorded a size")
	}
}
