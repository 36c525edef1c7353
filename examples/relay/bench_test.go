package relay_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// The relay's benchmarks, each beside its baseline in the same run (see
// internal/benchratio):
//
//	go test -run '^$' -bench . ./examples/relay
//
// BenchmarkFollow runs for OFFSETSTORE_BENCH_FOLLOW_DURATION (default
// 30s) once its 100 000 streams are caught up.

// fillJournal writes streams × events events of 100 bytes, the streams
// named stream-000000 …, in one statement.
func fillJournal(b *testing.B, db *testdb.DB, streams, events int) {
	b.Helper()
	if _, err := db.Pool.Exec(b.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
		SELECT 'stream-' || lpad(i::text, 6, '0'), s, convert_to(repeat('x', 100), 'UTF8'), 'bench-manifest', 'bench-writer', '{bench}'
		  FROM generate_series(0, $1::int - 1) i, generate_series(1, $2::int) s`, streams, events); err != nil {
		b.Fatalf("fill the journal: %v", err)
	}
	if _, err := db.Pool.Exec(b.Context(), `VACUUM ANALYZE journal`); err != nil {
		b.Fatal(err)
	}
}

// countingRelay is a relay whose Publish counts, and signals when it has
// published want events.
type countingRelay struct {
	r      *relay.Relay
	n      atomic.Int64
	want   int64
	all    chan struct{}
	cancel context.CancelFunc
	done   chan error
}

func startCounting(b *testing.B, db *testdb.DB, outbox, mode string, want int64) *countingRelay {
	b.Helper()
	c := &countingRelay{want: want, all: make(chan struct{}), done: make(chan error, 1)}
	var once sync.Once
	cfg := relay.Config{Pool: db.Pool, Outbox: outbox, Incremental: mode == "incremental", Publish: func(context.Context, journal.Event) error {
		if c.n.Add(1) == c.want {
			once.Do(func() { close(c.all) })
		}
		return nil
	}}
	if mode == "saving_apart" {
		// The reading and publishing alone: saves only at the end.
		cfg.CommitEvery, cfg.CommitInterval, cfg.MaxUnsaved = 1_000_000, time.Hour, 10_000_000
	}
	r, err := relay.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c.r = r
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { c.done <- r.Run(ctx) }()
	return c
}

func (c *countingRelay) stop() error {
	c.cancel()
	return <-c.done
}

// BenchmarkCatchUp is a relay on a fresh outbox publishing every event
// of a journal (Publish only counts), from its start until the last
// event is published, beside one streaming SELECT of the same events in
// the same order (the order the relay must keep: each stream's events
// ascending), and beside the same SELECT in no order (the fastest read
// of those rows). Goal: at least half the ordered SELECT's events/s.
//
// The relay runs with the default committer (a save every 1 000 marks,
// at most 30 000 events unsaved) in each store mode: full (the default),
// incremental (Config.Incremental). A third, saving_apart, saves only at
// the end: the share of the reading and publishing alone, not a
// configuration to run.
func BenchmarkCatchUp(b *testing.B) {
	for _, size := range []struct{ streams, events int }{{100_000, 2}, {10_000, 10}} {
		for _, mode := range []string{"full", "incremental", "saving_apart"} {
			b.Run(fmt.Sprintf("%dx%d/%s", size.streams, size.events, mode), func(b *testing.B) {
				db := testdb.New(b)
				fillJournal(b, db, size.streams, size.events)
				total := int64(size.streams * size.events)
				var running *countingRelay
				var paused, saves, runs int64
				outboxes := 0
				stopPrevious := func() error {
					if running == nil {
						return nil
					}
					err := running.stop()
					st := running.r.Stats()
					paused += st.Paused
					saves += st.Saves
					runs++
					running = nil
					return err
				}
				b.Cleanup(func() { _ = stopPrevious() })
				relaySide := benchratio.Side{
					Name: "relay",
					// Untimed: the previous relay's shutdown (its final save).
					Setup: stopPrevious,
					Op: func(ctx context.Context) error {
						outboxes++
						running = startCounting(b, db, fmt.Sprintf("catchup-%d", outboxes), mode, total)
						select {
						case <-running.all:
							return nil
						case err := <-running.done:
							return fmt.Errorf("relay stopped after %d of %d events: %v", running.n.Load(), total, err)
						}
					},
				}
				defer func() {
					fmt.Printf("catch-up %dx%d %s: %d runs, %d pauses of publishing (MaxUnsaved reached), %d saves\n", size.streams, size.events, mode, runs, paused, saves)
				}()
				name := fmt.Sprintf("catchup_%dx%d_%s_events_per_s", size.streams, size.events, mode)
				b.Run("vs_ordered_select", func(b *testing.B) {
					rel, sel := benchratio.Alternate(b, 1, float64(total), "events", relaySide, selectSide(db, "select-ordered", ` ORDER BY persistence_id, sequence_nr`, total))
					goal := benchratio.Goal{Min: 0.5}
					if mode == "saving_apart" {
						goal = benchratio.Goal{} // not a configuration to run, the read side's share
					}
					benchratio.Print(name+"_vs_ordered_select", sel, rel, goal)
					_ = stopPrevious()
				})
				b.Run("vs_unordered_select", func(b *testing.B) {
					rel, sel := benchratio.Alternate(b, 1, float64(total), "events", relaySide, selectSide(db, "select-unordered", ``, total))
					benchratio.Print(name+"_vs_unordered_select", sel, rel, benchratio.Goal{})
					_ = stopPrevious()
				})
			})
		}
	}
}

// selectSide streams the journal's events, the columns the relay reads,
// into reused variables.
func selectSide(db *testdb.DB, name, order string, want int64) benchratio.Side {
	return benchratio.Side{Name: name, Op: func(ctx context.Context) error {
		rows, err := db.Pool.Query(ctx, `SELECT sequence_nr, payload, manifest, writer_uuid, tags, written_at, persistence_id
  FROM journal WHERE NOT starts_with(persistence_id, 'outbox::')`+order)
		if err != nil {
			return err
		}
		defer rows.Close()
		var (
			seq      int64
			payload  []byte
			man, w   pgtype.DriverBytes
			tags     []string
			at       time.Time
			pid      pgtype.DriverBytes
			n        int64
			lastPID  string
			lastSeen = map[string]uint64{}
		)
		for rows.Next() {
			if err := rows.Scan(&seq, &payload, &man, &w, &tags, &at, &pid); err != nil {
				return err
			}
			if string(pid) != lastPID {
				lastPID = string(pid)
			}
			_ = lastSeen
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("read %d events, want %d", n, want)
		}
		return nil
	}}
}

// BenchmarkFollow is a relay following 100 000 streams (caught up first)
// while writers append 1 000 events/s, each in a transaction of its own,
// into random streams, for OFFSETSTORE_BENCH_FOLLOW_DURATION (default
// 30s). It reports the time from each event's commit (the return of its
// Append) to its publish, p50 and p99 (goals 50 ms and 250 ms), the
// events appended and published per second, and the rows the relay's
// queries read per second (the journal table's rows fetched, from
// pg_stat_user_tables, over the run; the writers read none).
func BenchmarkFollow(b *testing.B) {
	const streams, rate, writers = 100_000, 1000, 4
	duration := 30 * time.Second
	if s := os.Getenv("OFFSETSTORE_BENCH_FOLLOW_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("OFFSETSTORE_BENCH_FOLLOW_DURATION: %v", err)
		}
		duration = d
	}
	for b.Loop() {
		db := testdb.New(b)
		fillJournal(b, db, streams, 1)
		ctx := b.Context()
		// The relay's own pool: reset (its backends end, flushing their
		// statistics) before each count of the rows read.
		relayPool := db.NewPool(b, nil)

		type key struct {
			pid string
			seq uint64
		}
		var (
			mu        sync.Mutex
			committed = map[key]time.Time{}
			published = map[key]time.Time{}
			caughtUp  atomic.Bool
			count     atomic.Int64
		)
		r, err := relay.New(relay.Config{Pool: relayPool, Outbox: "follow", Publish: func(_ context.Context, ev journal.Event) error {
			count.Add(1)
			if caughtUp.Load() {
				now := time.Now()
				mu.Lock()
				published[key{ev.PersistenceID, ev.SequenceNr}] = now
				mu.Unlock()
			}
			return nil
		}})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		for count.Load() < streams {
			select {
			case err := <-done:
				b.Fatalf("relay stopped while catching up: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		caughtUp.Store(true)

		before := readStats(b, db, relayPool)
		statsBefore := r.Stats()
		// The writers: each owns a quarter of the streams and appends one
		// event at a time, paced to rate/writers a second.
		j := pgjournal.New(db.Pool)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var appended atomic.Int64
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				heads := map[int]uint64{}
				tick := time.NewTicker(time.Second * writers / rate)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					i := w + writers*rng.IntN(streams/writers)
					pid := fmt.Sprintf("stream-%06d", i)
					if heads[i] == 0 {
						heads[i] = 1
					}
					heads[i]++
					ev := journal.Event{PersistenceID: pid, SequenceNr: heads[i], Payload: []byte("follow"), Manifest: "bench-manifest"}
					if err := j.Append(ctx, ev); err != nil {
						errs <- err
						return
					}
					now := time.Now()
					mu.Lock()
					committed[key{pid, ev.SequenceNr}] = now
					mu.Unlock()
					appended.Add(1)
				}
			})
		}
		start := time.Now()
		time.Sleep(duration)
		close(stop)
		wg.Wait()
		elapsed := time.Since(start)
		// Let the last ones through.
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(published)
			mu.Unlock()
			if int64(n) >= appended.Load() || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		after := readStats(b, db, relayPool)
		statsAfter := r.Stats()
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("relay: %v", err)
		}
		close(errs)
		for err := range errs {
			b.Fatalf("writer: %v", err)
		}

		mu.Lock()
		var lat []time.Duration
		missing := 0
		for k, c := range committed {
			p, ok := published[k]
			if !ok {
				missing++
				continue
			}
			lat = append(lat, max(0, p.Sub(c)))
		}
		mu.Unlock()
		if missing > 0 {
			b.Fatalf("%d of %d events appended were not published", missing, len(committed))
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		secs := elapsed.Seconds()
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(appended.Load())/secs, "appended/s")
		b.ReportMetric(float64(len(lat))/secs, "published/s")
		b.ReportMetric(float64(after-before)/secs, "rows-read/s")
		b.ReportMetric(float64(statsAfter.Read-statsBefore.Read)/secs, "relay-events-read/s")
		b.ReportMetric(float64(statsAfter.Passes-statsBefore.Passes)/secs, "passes/s")
		benchratio.Print("follow_100k_p50_vs_50ms", float64(p50), float64(50*time.Millisecond), benchratio.Goal{Max: 1})
		benchratio.Print("follow_100k_p99_vs_250ms", float64(p99), float64(250*time.Millisecond), benchratio.Goal{Max: 1})
		benchratio.Print("follow_100k_rows_read_per_event_appended", float64(after-before), float64(appended.Load()), benchratio.Goal{})
	}
}

// readStats returns the rows read from the journal table so far
// (sequential and index fetches), after resetting the relay's pool: its
// backends end and flush their counts (an idle backend would hold them
// for up to 10 s), which takes up to a second to show.
func readStats(b *testing.B, db *testdb.DB, relayPool *pgxpool.Pool) int64 {
	b.Helper()
	relayPool.Reset()
	time.Sleep(1100 * time.Millisecond)
	var n int64
	if err := db.Pool.QueryRow(b.Context(), `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
  FROM pg_stat_user_tables WHERE relname = 'journal'`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
