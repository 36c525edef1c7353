package relay

import "github.com/outboxkit/offsetstore/store"

// CommitterHook is called with each committer the relay starts, once it
// is made and before the relay marks anything on it, with the outbox's
// name; the function it returns (nil: none) is called once the relay is
// done with the committer (after its final Close). Metrics of the
// committer's Stats hang here, with no dependency of this package: the
// offsetstoreotel module's Metrics.CommitterHook records its unsaved and
// pending gauges, and Metrics.StoreOption, given in StoreOptions, the
// saves:
//
//	m, _ := offsetstoreotel.New(offsetstoreotel.WithMeterProvider(mp))
//	relay.New(relay.Config{…,
//		StoreOptions: []store.Option{m.StoreOption()},
//		OnCommitter:  m.CommitterHook,
//	})
type CommitterHook func(outbox string, c *store.Committer) (done func())

// watch calls the hook for c and returns what to call when done with it.
func (r *Relay) watch(c *store.Committer) func() {
	if r.cfg.OnCommitter == nil {
		return func() {}
	}
	if done := r.cfg.OnCommitter(r.cfg.Outbox, c); done != nil {
		return done
	}
	return func() {}
}
