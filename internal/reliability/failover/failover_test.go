package failover_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
)

// EnvCycles sets the number of failovers of TestFailover.
const EnvCycles = "OFFSETSTORE_FAILOVER_CYCLES"

// TestFailover: four writers (Save and SaveTx with sink rows, full and
// incremental mode) save continuously through the multi-host URL of a
// primary with a synchronous standby, and log every save that returned
// nil. At random moments the primary is killed (SIGKILL), the standby
// promoted and a new standby built from it; the writers reconnect and go
// on, with no reopen. After each promotion, on the promoted server and
// before it can commit anything (it waits for its new standby): every
// save acknowledged before the kill is there (offsets at least the
// acknowledged ones), no offset went back from what the previous check
// found, and every outbox opens (incremental chains included). At the end:
// every acknowledged save is there, and every sink has exactly one row per
// event up to its offset, none missing (a lost transaction whose offsets
// the store saved again would leave a gap) and none twice.
func TestFailover(t *testing.T) {
	cycles := rel.EnvInt(t, EnvCycles, 20)
	r := testdb.NewReplicated(t)
	t.Logf("pair: %s", r)
	ctx := context.Background()
	ws := writers(t, r)

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.run(wctx) })
	}

	prev := make([]map[string]uint64, len(ws)) // what the previous primary held
	var promotedTotal, rebuiltTotal, backTotal time.Duration
	var backs int
	lost := make([]int, len(ws))
	for cycle := 1; cycle <= cycles; cycle++ {
		time.Sleep(time.Duration(200+rand.IntN(500)) * time.Millisecond)
		// What was acknowledged before the kill must survive it.
		before := make([]map[string]uint64, len(ws))
		upTo := make([]int, len(ws))
		for i, w := range ws {
			before[i], upTo[i] = w.snapshot(), w.acksSoFar()
		}
		fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		killed := time.Now()
		if err := r.KillPrimary(fctx); err != nil {
			t.Fatalf("cycle %d: kill: %v", cycle, err)
		}
		if err := r.Promote(fctx); err != nil {
			t.Fatalf("cycle %d: promote: %v", cycle, err)
		}
		promoted := time.Since(killed)
		// Checked before the new standby is built: until then every commit
		// on the promoted server waits for it, invisible, so the check sees
		// what the failover kept, before a store's next save (which writes
		// every offset it holds) could put lost offsets back.
		url := r.PrimaryURL()
		for i, w := range ws {
			loaded, _, err := loadFresh(ctx, url, w.name)
			if err != nil {
				t.Fatalf("cycle %d: %s: open on the promoted server: %v", cycle, w.name, err)
			}
			if n := w.lost(loaded, upTo[i]); n > 0 {
				lost[i] += n
				t.Errorf("cycle %d: %s: %d acknowledged saves lost: %v", cycle, w.name, n, missing(loaded, before[i]))
			}
			if back := missing(loaded, prev[i]); len(back) > 0 {
				t.Errorf("cycle %d: %s: offsets went back from the previous primary's: %v", cycle, w.name, back)
			}
			prev[i] = loaded
		}
		t1 := time.Now()
		err := r.AddStandby(fctx)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: new standby: %v", cycle, err)
		}
		rebuilt := time.Since(t1)
		promotedTotal += promoted
		rebuiltTotal += rebuilt
		// How long until every writer is acknowledged again.
		for _, w := range ws {
			for t0 := time.Now(); !w.since().After(killed); time.Sleep(10 * time.Millisecond) {
				if time.Since(t0) > time.Minute {
					t.Fatalf("cycle %d: %s: no save acknowledged within a minute of the failover", cycle, w.name)
				}
			}
			backTotal += w.since().Sub(killed)
			backs++
		}
		t.Logf("cycle %d: promoted %v after the kill, new standby %v later; %s", cycle,
			promoted.Round(time.Millisecond), rebuilt.Round(time.Millisecond), progress(ws))
	}
	stop()
	wg.Wait()

	// The end: every acknowledged save, and the sinks exactly once.
	url := r.PrimaryURL()
	for i, w := range ws {
		for _, err := range w.fenced {
			t.Errorf("%s: spurious ErrFenced for the only writer: %v", w.name, err)
		}
		loaded, seq, err := loadFresh(ctx, url, w.name)
		if err != nil {
			t.Fatalf("%s: open at the end: %v", w.name, err)
		}
		if n := w.lost(loaded, w.acksSoFar()); n > 0 {
			lost[i] += n
			t.Errorf("%s: %d acknowledged saves lost at the end: %v", w.name, n, missing(loaded, w.snapshot()))
		}
		prefix := "failover_" + strings.ReplaceAll(w.name, "-", "_") + "_"
		st := w.s.Stats()
		t.Logf("%s: %d saves acknowledged, %d in doubt, %d retried (ErrRetryTx), %d failed, %d adopted; snapshot %d at the end",
			w.name, w.ok, w.doubt, w.retried, w.failed, st.Adopted, seq)
		rel.Figure(t, prefix+"acknowledged", float64(w.ok), "saves")
		rel.Figure(t, prefix+"lost", float64(lost[i]), "saves")
		rel.Figure(t, prefix+"in_doubt", float64(w.doubt), "saves")
		rel.Figure(t, prefix+"failed", float64(w.failed), "saves")
		rel.Figure(t, prefix+"adopted", float64(st.Adopted), "saves")
		if w.tx {
			events, dups, gaps, beyond, err := w.checkSink(ctx, url, loaded)
			if err != nil {
				t.Fatal(err)
			}
			if dups != 0 || gaps != 0 || beyond != 0 {
				t.Errorf("%s: sink: %d duplicate rows, %d events missing, %d rows beyond the offsets", w.name, dups, gaps, beyond)
			}
			rel.Figure(t, prefix+"retried", float64(w.retried), "transactions")
			rel.Figure(t, prefix+"sink_events", float64(events), "events")
			rel.Figure(t, prefix+"sink_duplicates", float64(dups), "rows")
			rel.Figure(t, prefix+"sink_gaps", float64(gaps), "events")
		}
	}
	rel.Figure(t, "failover_cycles", float64(cycles), "cycles")
	rel.Figure(t, "failover_promote_mean", rel.Millis(promotedTotal/time.Duration(cycles)), "ms")
	rel.Figure(t, "failover_new_standby_mean", rel.Millis(rebuiltTotal/time.Duration(cycles)), "ms")
	rel.Figure(t, "failover_writer_back_mean", rel.Millis(backTotal/time.Duration(max(backs, 1))), "ms")
}

// missing lists the keys of want that got is below.
func missing(got, want map[string]uint64) map[string][2]uint64 {
	out := map[string][2]uint64{}
	for k, v := range want {
		if got[k] < v {
			out[k] = [2]uint64{v, got[k]}
		}
	}
	return out
}

// progress sums the writers up for the log.
func progress(ws []*writer) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteString(", ")
		}
		w.mu.Lock()
		b.WriteString(w.name + " ")
		b.WriteString(strconv.Itoa(w.ok))
		w.mu.Unlock()
	}
	return b.String() + " acknowledged"
}
