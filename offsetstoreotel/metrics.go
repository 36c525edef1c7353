package offsetstoreotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/outboxkit/offsetstore/store"
)

// Instrument and attribute names (fixed: dashboards use them).
const (
	ScopeName = "github.com/outboxkit/offsetstore/offsetstoreotel"

	InstrumentSaveDuration     = "offsetstore.save.duration"
	InstrumentSaveSize         = "offsetstore.save.size"
	InstrumentCommitterUnsaved = "offsetstore.committer.unsaved"
	InstrumentCommitterPending = "offsetstore.committer.pending"

	AttributeOutbox  = "offsetstore.outbox"
	AttributeOutcome = "offsetstore.outcome"
)

// Option configures New.
type Option func(*config)

type config struct {
	mp metric.MeterProvider
}

// WithMeterProvider sets the meter provider the instruments come from.
// Defaults to (and nil means) the global one, otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// Metrics holds the instruments. It is safe for concurrent use: one
// Metrics serves every store and committer of a process.
type Metrics struct {
	meter    metric.Meter
	duration metric.Float64Histogram
	size     metric.Int64Histogram
	unsaved  metric.Int64ObservableGauge
	pending  metric.Int64ObservableGauge
}

// New creates the instruments on the meter provider's meter of ScopeName.
func New(opts ...Option) (*Metrics, error) {
	var c config
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	m := &Metrics{meter: c.mp.Meter(ScopeName)}
	var errs [4]error
	m.duration, errs[0] = m.meter.Float64Histogram(InstrumentSaveDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of each write call of an offset store (Save, SaveTx, Rewind, Forget, Replace), by outcome."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	m.size, errs[1] = m.meter.Int64Histogram(InstrumentSaveSize, metric.WithUnit("By"),
		metric.WithDescription("Payload size of the snapshot row a write call of an offset store sent."),
		metric.WithExplicitBucketBoundaries(64, 256, 1<<10, 4<<10, 16<<10, 64<<10, 256<<10, 1<<20, 4<<20, 16<<20, 64<<20))
	m.unsaved, errs[2] = m.meter.Int64ObservableGauge(InstrumentCommitterUnsaved, metric.WithUnit("{key}"),
		metric.WithDescription("Keys whose committable offset a committer has not saved yet."))
	m.pending, errs[3] = m.meter.Int64ObservableGauge(InstrumentCommitterPending, metric.WithUnit("{event}"),
		metric.WithDescription("Sequence numbers a committer tracks that are not marked done yet."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("offsetstoreotel: create the instruments: %w", err)
	}
	return m, nil
}

// Observe records one write call of a store: pass it to store.WithObserver
// (or use StoreOption).
func (m *Metrics) Observe(ev store.WriteEvent) {
	ctx := context.Background()
	outbox := attribute.String(AttributeOutbox, ev.Outbox)
	m.duration.Record(ctx, ev.Duration.Seconds(), metric.WithAttributes(outbox, attribute.String(AttributeOutcome, string(ev.Outcome))))
	if ev.Bytes > 0 {
		m.size.Record(ctx, int64(ev.Bytes), metric.WithAttributes(outbox))
	}
}

// StoreOption is store.WithObserver(m.Observe), for store.Open.
func (m *Metrics) StoreOption() store.Option { return store.WithObserver(m.Observe) }

// ObserveCommitter reports c's unsaved keys and pending events under
// outbox at every collection until the returned function is called.
func (m *Metrics) ObserveCommitter(outbox string, c *store.Committer) (stop func() error, err error) {
	if c == nil {
		return nil, errors.New("offsetstoreotel: observe a nil committer")
	}
	attrs := metric.WithAttributes(attribute.String(AttributeOutbox, outbox))
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := c.Stats()
		o.ObserveInt64(m.unsaved, int64(st.Unsaved), attrs)
		o.ObserveInt64(m.pending, int64(st.Pending), attrs)
		return nil
	}, m.unsaved, m.pending)
	if err != nil {
		return nil, fmt.Errorf("offsetstoreotel: observe the committer of %q: %w", outbox, err)
	}
	return reg.Unregister, nil
}

// CommitterHook is ObserveCommitter in the shape of the reference relay's
// relay.Config.OnCommitter: an error goes to otel.Handle (the global error
// handler) and the committer is then not observed.
func (m *Metrics) CommitterHook(outbox string, c *store.Committer) func() {
	stop, err := m.ObserveCommitter(outbox, c)
	if err != nil {
		otel.Handle(err)
		return nil
	}
	return func() {
		if err := stop(); err != nil {
			otel.Handle(err)
		}
	}
}
