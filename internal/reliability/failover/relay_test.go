package failover_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/examples/relay"
	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
)

// relayStreams is how many source streams the relays follow.
const relayStreams = 8

// TestRelayAcrossFailover runs the reference relay (leadership, store,
// committer; and, with PublishTx, a sink table in incremental mode) on a
// pool of the pair's multi-host URL prepared by pgjournal.ConfigurePool,
// while a producer appends events and the primary is killed and the
// standby promoted three times. Run never returns: each time the lease
// is lost with the primary, the relay takes it again on the promoted
// server and goes on from the offsets there. At the end every event is
// published (at least once with Publish; exactly once into the sink with
// PublishTx).
func TestRelayAcrossFailover(t *testing.T) {
	for _, tx := range []bool{false, true} {
		name := "Publish"
		if tx {
			name = "PublishTx"
		}
		t.Run(name, func(t *testing.T) { testRelayAcrossFailover(t, tx) })
	}
}

func testRelayAcrossFailover(t *testing.T, tx bool) {
	r := testdb.NewReplicated(t)
	ctx := context.Background()
	pool := newPool(t, r.URL, "relay", false, nil)
	producer := pgjournal.New(newPool(t, r.URL, "producer", false, nil))
	const sink = "relay_sink"
	if _, err := pool.Exec(ctx, `CREATE TABLE `+sink+` (pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	published := map[string]map[uint64]int{}
	cfg := relay.Config{
		Pool:           pool,
		Outbox:         "failover",
		CommitEvery:    20,
		CommitInterval: 50 * time.Millisecond,
		PollInterval:   20 * time.Millisecond,
		DiscoverEvery:  200 * time.Millisecond,
		LeaderOptions:  []leader.Option{leader.WithSessionTimeout(2 * time.Second)},
	}
	if tx {
		cfg.Incremental = true
		cfg.PublishTx = func(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
			b := &pgx.Batch{}
			for _, ev := range events {
				b.Queue(`INSERT INTO `+sink+` (pid, seq) VALUES ($1, $2)`, ev.PersistenceID, int64(ev.SequenceNr))
			}
			return tx.SendBatch(ctx, b).Close()
		}
	} else {
		cfg.Publish = func(_ context.Context, ev journal.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if published[ev.PersistenceID] == nil {
				published[ev.PersistenceID] = map[uint64]int{}
			}
			published[ev.PersistenceID][ev.SequenceNr]++
			return nil
		}
	}
	rl, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	runErr := make(chan error, 1)
	go func() { runErr <- rl.Run(rctx) }()

	// The producer appends a few events to a random stream every few
	// milliseconds; an append that fails (the primary dead) is tried
	// again with the same numbers.
	heads := map[string]uint64{}
	pctx, stopProducer := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for pctx.Err() == nil {
			pid := fmt.Sprintf("stream-%02d", rand.IntN(relayStreams))
			var evs []journal.Event
			for k := range 1 + rand.IntN(3) {
				seq := heads[pid] + uint64(k) + 1
				evs = append(evs, journal.Event{PersistenceID: pid, SequenceNr: seq, Payload: fmt.Appendf(nil, "%s/%d", pid, seq)})
			}
			actx, cancel := context.WithTimeout(pctx, 5*time.Second)
			err := producer.Append(actx, evs...)
			cancel()
			if err == nil {
				heads[pid] = evs[len(evs)-1].SequenceNr
			} else if hi, herr := producer.HighestSequenceNr(pctx, pid); herr == nil {
				heads[pid] = hi // the append may have committed after all
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	const failovers = 3
	for i := 1; i <= failovers; i++ {
		time.Sleep(time.Duration(500+rand.IntN(500)) * time.Millisecond)
		fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		promoted, rebuilt, err := r.Failover(fctx)
		cancel()
		if err != nil {
			t.Fatalf("failover %d: %v", i, err)
		}
		t.Logf("failover %d: promoted after %v, new standby %v later; relay: %+v", i, promoted.Round(time.Millisecond), rebuilt.Round(time.Millisecond), rl.Stats())
		select {
		case err := <-runErr:
			t.Fatalf("failover %d: Run returned: %v", i, err)
		default:
		}
	}
	stopProducer()
	<-produced

	// Every event is published, whatever the failovers did.
	deadline := time.Now().Add(time.Minute)
	for {
		lost, extra, err := tallyRelay(ctx, r.PrimaryURL(), tx, sink, heads, &mu, published)
		if err != nil {
			t.Fatal(err)
		}
		if lost == 0 || time.Now().After(deadline) {
			st := rl.Stats()
			events := 0
			for _, h := range heads {
				events += int(h)
			}
			t.Logf("%d events, %d failovers: %d never published, %d published again (%s); relay: %+v", events, failovers, lost, extra, map[bool]string{false: "at least once", true: "duplicate sink rows"}[tx], st)
			prefix := "failover_relay_publish_"
			if tx {
				prefix = "failover_relay_publishtx_"
				if extra != 0 {
					t.Errorf("%d duplicate sink rows: exactly once broken", extra)
				}
				rel.Figure(t, prefix+"duplicates", float64(extra), "rows")
			} else {
				rel.Figure(t, prefix+"republished", float64(extra), "events")
			}
			rel.Figure(t, prefix+"events", float64(events), "events")
			rel.Figure(t, prefix+"lost", float64(lost), "events")
			rel.Figure(t, prefix+"leaderships", float64(st.Leaderships), "leases")
			if lost != 0 {
				t.Fatalf("%d events never published a minute after the producer stopped", lost)
			}
			if st.Leaderships < failovers+1 {
				t.Errorf("%d leaderships, want at least %d: one before and one after each failover", st.Leaderships, failovers+1)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-runErr:
		t.Fatalf("Run returned: %v", err)
	default:
	}
	stopRelay()
	// A shutdown slower than a few seconds: what the servers' sessions
	// wait for, while they still wait.
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run after the shutdown: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Logf("Run has not returned 3 s after the shutdown; the primary's sessions:\n%s", serverState(ctx, r.PrimaryURL()))
		err := <-runErr
		t.Logf("Run returned; the primary's sessions:\n%s", serverState(ctx, r.PrimaryURL()))
		if err != nil {
			t.Errorf("Run after the shutdown: %v", err)
		}
	}
}

// serverState lists the sessions of the server at url (but its own) and
// its standbys, for a failure's report.
func serverState(ctx context.Context, url string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Sprintf("connect: %v", err)
	}
	defer c.Close(context.Background())
	var out []byte
	rows, err := c.Query(ctx, `SELECT format('pid %s app %s state %s wait %s/%s xact %s blocked by %s: %s',
		pid, application_name, state, wait_event_type, wait_event, now() - xact_start, pg_blocking_pids(pid), left(query, 120))
		FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type IN ('client backend', 'walsender')
		UNION ALL
		SELECT format('standby %s state %s sync %s sent %s flush %s replay %s, primary at %s', application_name, state, sync_state, sent_lsn, flush_lsn, replay_lsn, pg_current_wal_lsn())
		FROM pg_stat_replication`)
	if err != nil {
		return fmt.Sprintf("query: %v", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Sprintf("scan: %v", err)
		}
		out = append(append(out, line...), '\n')
	}
	if err := rows.Err(); err != nil {
		return fmt.Sprintf("rows: %v", err)
	}
	return string(out)
}

// tallyRelay counts, against heads, the events never published and those
// published more than once: in published, or (tx) in the sink table on the
// server at url.
func tallyRelay(ctx context.Context, url string, tx bool, sink string, heads map[string]uint64, mu *sync.Mutex, published map[string]map[uint64]int) (lost, extra int, err error) {
	counts := map[string]map[uint64]int{}
	if tx {
		err = withConn(ctx, url, func(c *pgx.Conn) error {
			rows, err := c.Query(ctx, `SELECT pid, seq, count(*) FROM `+sink+` GROUP BY pid, seq`)
			if err != nil {
				return err
			}
			var pid string
			var seq int64
			var n int
			_, err = pgx.ForEachRow(rows, []any{&pid, &seq, &n}, func() error {
				if counts[pid] == nil {
					counts[pid] = map[uint64]int{}
				}
				counts[pid][uint64(seq)] = n
				return nil
			})
			return err
		})
		if err != nil {
			return 0, 0, err
		}
	} else {
		mu.Lock()
		defer mu.Unlock()
		counts = published
	}
	for pid, h := range heads {
		for seq := uint64(1); seq <= h; seq++ {
			switch n := counts[pid][seq]; {
			case n == 0:
				lost++
			case n > 1:
				extra += n - 1
			}
		}
	}
	return lost, extra, nil
}
