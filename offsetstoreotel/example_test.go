package offsetstoreotel_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/offsetstoreotel"
	"github.com/outboxkit/offsetstore/store"
)

func Example() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader() // an exporter's reader in a service
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	m, err := offsetstoreotel.New(offsetstoreotel.WithMeterProvider(mp))
	if err != nil {
		panic(err)
	}
	st, err := store.Open(ctx, journal.NewMemory(), "orders-to-kafka", m.StoreOption())
	if err != nil {
		panic(err)
	}
	c, err := store.NewCommitter(st)
	if err != nil {
		panic(err)
	}
	stop, err := m.ObserveCommitter("orders-to-kafka", c)
	if err != nil {
		panic(err)
	}
	defer stop()
	_ = c.Mark("order-1", 7)
	_ = c.Close(ctx) // saves: one ok write

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, met := range sm.Metrics {
			fmt.Println(met.Name, met.Unit)
		}
	}
	// Output:
	// offsetstore.save.duration s
	// offsetstore.save.size By
	// offsetstore.committer.unsaved {key}
	// offsetstore.committer.pending {event}
}
