// Package offsetstoreotel records OpenTelemetry metrics of offset stores
// and committers, in a Go module of its own so that the offsetstore
// module takes no metrics dependency.
//
// # Instruments
//
// Every measurement carries offsetstore.outbox (the outbox's name) and
// nothing per key, writer id, sequence number or error text:
//
//	offsetstore.save.duration      s        histogram  each write call of a store, with
//	                                                   offsetstore.outcome: ok, fenced, adopted,
//	                                                   in_doubt or error (store.Outcome)
//	offsetstore.save.size          By       histogram  payload bytes of the row a write call sent
//	offsetstore.committer.unsaved  {key}    gauge      keys marked but not yet saved
//	offsetstore.committer.pending  {event}  gauge      tracked sequence numbers not yet marked
//
// The store's figures come from store.WithObserver (StoreOption), the
// committer's from its Stats, read at each collection (ObserveCommitter,
// CommitterHook for the reference relay's Config.OnCommitter).
//
// # Use
//
//	m, err := offsetstoreotel.New(offsetstoreotel.WithMeterProvider(mp)) // nil: the global one
//	st, err := store.Open(ctx, j, "orders-to-kafka", m.StoreOption())
//	c, err := store.NewCommitter(st)
//	stop, err := m.ObserveCommitter("orders-to-kafka", c)
//	defer stop()
package offsetstoreotel
