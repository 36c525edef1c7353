package monitor_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/monitor"
	"github.com/outboxkit/offsetstore/store"
)

// A health endpoint of a service's own: 200 while every outbox is OK.
func Example() {
	ctx := context.Background()
	j := journal.NewMemory() // pgjournal.New(pool) in a service

	// A relay published order-1 up to 3; order-1 has 5 events.
	for seq := uint64(1); seq <= 5; seq++ {
		_ = j.Append(ctx, journal.Event{PersistenceID: "order-1", SequenceNr: seq, Payload: []byte("…")})
	}
	offsets, _ := store.Open(ctx, j, "orders-to-kafka")
	_ = offsets.Save(ctx, map[string]uint64{"order-1": 3})

	m, err := monitor.New(j, monitor.WithRules(monitor.Rules{Window: 4, StopAfter: time.Minute}))
	if err != nil {
		panic(err)
	}
	reports, err := m.Poll(ctx) // a service calls Poll at an interval, or m.Run
	if err != nil {
		panic(err)
	}
	for _, r := range reports {
		fmt.Printf("%s %s lag=%d keys=%d\n", r.Outbox, r.Status, r.Lag, r.Keys)
	}

	health := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for _, r := range m.Reports() {
			if r.Status != monitor.StatusOK {
				http.Error(w, fmt.Sprintf("%s: %s %s", r.Outbox, r.Status, r.Reason), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	rec := httptest.NewRecorder()
	health.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	fmt.Println(rec.Code)
	// Output:
	// orders-to-kafka OK lag=2 keys=1
	// 200
}
