package failover_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// TestOpenedSnapshotLost: a write's wait for the stopped synchronous
// standby is ended by pg_terminate_backend (in doubt: its row is on the
// primary only), then another store opens the outbox there and loads that
// row. The primary is killed and the standby promoted: the row is gone.
// The opened store's first write finds that out before writing
// (ErrOpenedSnapshotLost), and once opened again it goes on from what the
// promoted server has. Without the confirmation (the control) the opened
// store writes on top of the lost row: with SaveTx, offsets that claim a
// sink row the promoted server does not have. (In incremental mode its
// delta on the lost row is refused as a successor of a missing base, and a
// full snapshot written instead: the chain stays whole either way.)
func TestOpenedSnapshotLost(t *testing.T) {
	r := testdb.NewReplicated(t)
	ctx := t.Context()
	type osCase struct {
		name    string
		mode    rel.Mode
		tx      bool
		control bool
		first   *cwCase // the writer whose write is terminated
		opened  *store.Store
		err     error
	}
	var cases []*osCase
	for _, c := range []struct {
		mode rel.Mode
		tx   bool
	}{{rel.Modes[1], false}, {rel.Modes[0], true}} {
		for _, control := range []bool{false, true} {
			name := "opened-" + map[bool]string{false: "incremental-save", true: "full-savetx"}[c.tx]
			if control {
				name += "-control"
			}
			oc := &osCase{name: name, mode: c.mode, tx: c.tx, control: control,
				first: &cwCase{name: name, end: terminated, tx: c.tx, mode: c.mode}}
			oc.first.open(t, r)
			if err := oc.first.write(ctx, 1); err != nil {
				t.Fatal(err)
			}
			cases = append(cases, oc)
		}
	}

	if err := r.StopStandby(ctx); err != nil {
		t.Fatal(err)
	}
	admin := adminConn(t, r.PrimaryURL())
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() { c.first.writeWaiting(ctx) })
		pid, err := syncWaiter(ctx, admin, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := signalBackend(ctx, admin, "pg_terminate_backend", pid); err != nil {
			t.Fatal(err)
		}
		close(c.first.signalled)
	}
	wg.Wait()
	// A store opened now loads the terminated write's row, there on the
	// primary alone.
	for _, c := range cases {
		if c.first.acked {
			t.Fatalf("%s: the terminated write was acknowledged: %v", c.name, c.first.err1)
		}
		pool := newPool(t, r.URL, c.name+"-opened", false, nil)
		var j journal.Journal = pgjournal.New(pool)
		if c.control {
			j = hideConfirmation(pgjournal.New(pool))
		}
		s, err := store.Open(ctx, j, c.name, c.mode.Options...)
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := s.Load(ctx); m[cwKey] != 2 {
			t.Fatalf("%s: opened at %v, want the terminated write's %s=2", c.name, m, cwKey)
		}
		c.opened = s
	}

	if err := r.KillPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.AddStandby(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		w := &cwCase{name: c.name, tx: c.tx, s: c.opened, txPool: c.first.txPool, sink: c.first.sink}
		for range 20 { // the pools reconnect to the promoted server
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c.err = w.write(sctx, 3)
			cancel()
			if c.err == nil || errors.Is(c.err, store.ErrOpenedSnapshotLost) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		m, _, openErr := loadFresh(ctx, r.PrimaryURL(), c.name)
		var sink []uint64
		if c.tx {
			var err error
			if sink, err = sinkRows(ctx, r.PrimaryURL(), c.first.sink, cwKey); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: the opened store's first write after the failover: %v; a fresh open: %s=%d, %v; sink %v", c.name, c.err, cwKey, m[cwKey], openErr, sink)
		broken := openErr != nil || (c.tx && !slices.Equal(sink, seqs(m[cwKey])))
		rel.Figure(t, "opened_lost_"+map[bool]string{false: "fixed", true: "control"}[c.control]+"_"+map[bool]string{false: "chain_broken", true: "sink_gap"}[c.tx], map[bool]float64{false: 0, true: 1}[broken], "outboxes")
		if c.control {
			// SaveTx's control claims sink rows the promoted server lost.
			// Save's incremental control does not break its chain: its
			// delta on the lost row is refused as a successor of a missing
			// base and a full snapshot is written instead.
			if broken != c.tx {
				t.Errorf("%s (control): broken %v, want %v", c.name, broken, c.tx)
			}
			continue
		}
		if !errors.Is(c.err, store.ErrOpenedSnapshotLost) {
			t.Errorf("%s: %v, want ErrOpenedSnapshotLost", c.name, c.err)
		}
		if broken {
			t.Errorf("%s: the outbox is broken: %v, sink %v", c.name, openErr, sink)
		}
		// Opened again, it goes on from what the promoted server has.
		s, err := store.Open(ctx, pgjournal.New(newPool(t, r.URL, c.name+"-again", false, nil)), c.name, c.mode.Options...)
		if err != nil {
			t.Fatal(err)
		}
		w.s = s
		if err := w.write(ctx, 2); err != nil {
			t.Fatalf("%s: opened again: %v", c.name, err)
		}
		if m, _, err := loadFresh(ctx, r.PrimaryURL(), c.name); err != nil || m[cwKey] != 2 {
			t.Errorf("%s: after the write of the store opened again: %s=%d, %v", c.name, cwKey, m[cwKey], err)
		}
	}
}

// seqs returns 1..n.
func seqs(n uint64) []uint64 {
	s := make([]uint64, 0, n)
	for i := uint64(1); i <= n; i++ {
		s = append(s, i)
	}
	return s
}
