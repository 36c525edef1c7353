package failover_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
)

// TestAsynchronousStandbyLosesAcknowledged is the control of TestFailover:
// the same writers and the same check, with an asynchronous standby that
// is stopped while they save. Saves are acknowledged by the primary alone,
// and after the kill and the promotion the check must find acknowledged
// saves lost, for every writer: it can fail. The writers are paused before
// the kill: the promoted server accepts writes at once, and a store's next
// save writes every offset it holds, which would put the lost ones back
// before the check.
func TestAsynchronousStandbyLosesAcknowledged(t *testing.T) {
	r := testdb.NewReplicated(t, testdb.WithAsynchronousStandby())
	ctx := context.Background()
	ws := writers(t, r)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.run(wctx) })
	}
	defer wg.Wait()
	defer stop()

	time.Sleep(500 * time.Millisecond)
	if err := r.StopStandby(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := make([]int, len(ws))
	for i, w := range ws {
		stopped[i] = w.acksSoFar()
	}
	time.Sleep(time.Second)
	// Every save acknowledged, none under way, none started until the
	// check is done: a store writes what it holds, so a save on the
	// promoted server would put lost offsets back.
	upTo := make([]int, len(ws))
	for i, w := range ws {
		w.pause()
		defer w.resume()
		upTo[i] = w.acksSoFar()
	}
	if err := r.KillPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	url := r.PrimaryURL()
	for i, w := range ws {
		loaded, _, err := loadFresh(ctx, url, w.name)
		if err != nil {
			t.Fatalf("%s: open on the promoted server: %v", w.name, err)
		}
		lost := w.lost(loaded, upTo[i])
		t.Logf("%s: %d saves acknowledged while the asynchronous standby was stopped; after the failover %d acknowledged saves are lost", w.name, upTo[i]-stopped[i], lost)
		rel.Figure(t, "async_control_"+strings.ReplaceAll(w.name, "-", "_")+"_lost", float64(lost), "saves")
		if upTo[i] == stopped[i] {
			t.Errorf("%s: nothing acknowledged while the standby was stopped: the control tests nothing", w.name)
		}
		if lost == 0 {
			t.Errorf("%s: the check found no acknowledged save lost, with an asynchronous standby stopped during the saves: it cannot fail", w.name)
		}
	}
}
