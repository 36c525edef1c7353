package store_test

import (
	"context"
	"testing"

	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// BenchmarkSaveConfigurePool is the cost of pgjournal.ConfigurePool on the
// normal path: a Save (one key moves, 1 000 keys) on a pool it prepared,
// which counts the server's warnings per connection, beside the same Save
// on a pool it did not prepare, in the same database.
func BenchmarkSaveConfigurePool(b *testing.B) {
	sb := newSaveBench(b, 1000)
	prepared, err := store.Open(b.Context(), pgjournal.New(sb.db.NewPool(b, pgjournal.ConfigurePool)), "bench-prepared")
	if err != nil {
		b.Fatal(err)
	}
	if err := prepared.Save(b.Context(), sb.all); err != nil {
		b.Fatal(err)
	}
	var v uint64
	next := func() error { v++; return nil }
	one := func() map[string]uint64 { return map[string]uint64{"order-0000000": v} }
	plain := sb.storeSide("store-save", one, next)
	conf := benchratio.Side{Name: "store-save-prepared", Setup: next, Op: func(ctx context.Context) error {
		return prepared.Save(ctx, one())
	}}
	ns, base := benchratio.Alternate(b, 1, 0, "", conf, plain)
	benchratio.Print("store.Save/configure-pool/keys=1000/plain-pool", ns, base, benchratio.Goal{Max: 1.05})
}
