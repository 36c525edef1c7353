package store_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/store"
)

// A committer's own blocking call is never cancelled by the cleanup that
// stops the goroutine of a dropped committer: when Close or Flush is the
// last use of the handle, collections forced during the save must not
// cancel it. Run on PostgreSQL, with the save held until the collections
// are done.
func TestCommitterCleanupSparesOwnCall(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, c *store.Committer) error
	}{
		{"Close", func(ctx context.Context, c *store.Committer) error { return c.Close(ctx) }},
		{"Flush", func(ctx context.Context, c *store.Committer) error { return c.Flush(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pg := postgresJournal(t)
			j, f := newFlaky(pg)
			s := open(t, j, "gc-"+tc.name)
			entered := make(chan struct{})
			var once sync.Once
			f.setHook(func(ctx context.Context) error {
				once.Do(func() { close(entered) })
				// Held while the collections run; a cancelled save
				// fails here with ctx's error.
				t := time.NewTimer(300 * time.Millisecond)
				defer t.Stop()
				select {
				case <-t.C:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			go func() {
				<-entered
				for range 20 {
					runtime.GC()
					time.Sleep(5 * time.Millisecond)
				}
			}()
			// The handle's last use is the call itself.
			err := func() error {
				c := newCommitter(t, s, quiet...)
				if err := c.Mark("a", 1); err != nil {
					return err
				}
				return tc.call(t.Context(), c)
			}()
			if err != nil {
				t.Fatalf("%s with collections during its save = %v, want nil", tc.name, err)
			}
			wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
			wantOffsets(t, load(t, open(t, pg, "gc-"+tc.name)), map[string]uint64{"a": 1})
		})
	}
}

// On a journal without AppendNext, a plain Append is followed by a read of
// the stream's head. When that read fails, the write is in doubt: it must
// not be adopted because the row at its number is its own, for that row
// may lie under another writer's newer snapshot (here: a peer saved past
// it and pruned the row the stale store's number had).
func TestPlainAppendFailedHeadCheckNotAdopted(t *testing.T) {
	t.Parallel()
	base := postgresJournal(t)
	fj := faultjournal.New(base)
	stale := open(t, fj.Plain(), "ahead")
	peer := open(t, base, "ahead", store.WithRetention(1), store.WithPruneInterval(1))
	for i := range uint64(3) {
		save(t, peer, map[string]uint64{"p": i + 1})
	}
	// The stale store's number (1) was pruned by the peer: its plain
	// Append succeeds under the peer's snapshot 3, and the head check that
	// would tell fails.
	fj.FailLast.Store(1)
	err := stale.Save(t.Context(), map[string]uint64{"s": 1})
	if err == nil {
		t.Fatal("Save under a newer snapshot, its head check failed: nil, want an error (in doubt or fenced)")
	}
	if !errors.Is(err, store.ErrInDoubt) && !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Save = %v, want ErrInDoubt or ErrFenced", err)
	}
	if got := load(t, stale); len(got) != 0 {
		t.Fatalf("stale Load = %v, want the write not adopted", got)
	}
	// The next write finds the peer and is fenced.
	if err := stale.Save(t.Context(), map[string]uint64{"s": 2}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("next Save = %v, want ErrFenced", err)
	}
	wantOffsets(t, load(t, open(t, base, "ahead")), map[string]uint64{"p": 3})
}
