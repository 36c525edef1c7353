package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/leader"
	"github.com/outboxkit/offsetstore/store"
)

// outcome is what one kill-and-restart run delivered.
type outcome struct {
	published, republished, lost int
	saves                        int64 // saves of the offsets by both relays
}

// scenario is one kill-and-restart run: an outbox and its streams.
type scenario struct {
	a      *app
	f      *demoFlags
	url    string
	admin  *pgxpool.Pool // the demo's own pool: appends, checks, kills
	outbox string
	pids   []string
	total  int
	killAt int
}

// follows keeps each run to its own streams: the database may hold other
// runs' streams.
func (s *scenario) follows(pid string) bool { return strings.HasPrefix(pid, s.outbox+"-agg-") }

func (s *scenario) relayConfig(pool *pgxpool.Pool) relay.Config {
	return relay.Config{
		Pool:         pool,
		Outbox:       s.outbox,
		Follow:       s.follows,
		CommitEvery:  s.f.saveEvery,
		PollInterval: 20 * time.Millisecond,
		CloseTimeout: time.Minute,
		Incremental:  s.f.incremental,
	}
}

// running is a relay whose Run runs in a goroutine.
type running struct {
	*relay.Relay
	cancel context.CancelFunc
	done   chan error
}

func goRun(ctx context.Context, r *relay.Relay) *running {
	ctx, cancel := context.WithCancel(ctx)
	run := &running{Relay: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	return run
}

// runUntil runs relay 1 until killed is closed (the hook that kills it
// saw its event); an earlier end of Run is an error.
func runUntil(ctx context.Context, r *relay.Relay, killed <-chan struct{}) (*running, error) {
	run := goRun(ctx, r)
	select {
	case <-killed:
		return run, nil
	case err := <-run.done:
		run.cancel()
		return nil, fmt.Errorf("relay 1 stopped before the kill: %v", err)
	case <-ctx.Done():
		run.cancel()
		return nil, ctx.Err()
	}
}

// killLeader ends the session that holds the outbox's leadership, as the
// kill of relay 1's process would.
func (s *scenario) killLeader(ctx context.Context) error {
	if ok, err := terminateLeader(ctx, s.admin, s.outbox); err != nil || !ok {
		return fmt.Errorf("terminate relay 1's leadership session: found %v, %v", ok, err)
	}
	return nil
}

// caughtUp waits until r has found nothing new to publish once, or
// Run returned.
func (r *running) caughtUp(ctx context.Context) error {
	for r.Stats().IdlePasses == 0 {
		select {
		case err := <-r.done:
			r.done <- err
			return fmt.Errorf("relay stopped before it caught up: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// wait returns Run's error.
func (r *running) wait(ctx context.Context) error {
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errKilled = errors.New("the relay process was killed")

// atLeastOnce runs relay 1 until killAt events are published, kills it
// (its writes freeze, its leadership session is terminated), and runs
// relay 2 from the saved offsets. Once relay 2 has saved, relay 1's frozen
// last save goes on, and is refused. With async, events are published
// asynchronously and acknowledged out of order (Track + Mark).
func (s *scenario) atLeastOnce(ctx context.Context, async bool) (*outcome, error) {
	out := s.a.stdout
	sk := newSink(s.pids, s.f.events)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Relay 1, with a journal that freezes at the kill.
	p1, err := connect(ctx, s.url)
	if err != nil {
		return nil, err
	}
	defer p1.Close()
	j1 := &freezable{Journal: pgjournal.New(p1)}
	var dead atomic.Bool
	killed := make(chan struct{})
	var killOnce sync.Once
	bar := s.a.progress(s.killAt, "relay 1")
	sk.setHook(func(n int) {
		_ = bar.Add(1)
		if n == s.killAt {
			killOnce.Do(func() { dead.Store(true); j1.freeze(); close(killed) })
		}
	})
	cfg1 := s.relayConfig(p1)
	cfg1.Journal = j1
	s.setPublish(ctx, &cfg1, sk, &dead, async)
	r1, err := relay.New(cfg1)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	run1, err := runUntil(ctx, r1, killed)
	if err != nil {
		return nil, err
	}
	// Let the killed relay's committer start the save of what it marked
	// since its last one (at its interval at the latest), so that the kill
	// catches it in flight, as a real kill between a save's send and its
	// commit would. Bounded: a relay with nothing to save starts none.
	for deadline := time.Now().Add(3 * time.Second); !j1.holding() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	// The kill: the process's leadership session ends with it.
	if err := s.killLeader(ctx); err != nil {
		return nil, err
	}
	run1.cancel()
	_ = bar.Exit()
	killedAfter := since(start)

	// Relay 2: the restart.
	p2, err := connect(ctx, s.url)
	if err != nil {
		return nil, err
	}
	defer p2.Close()
	bar = s.a.progress(s.total-s.killAt, "relay 2")
	sk.setHook(func(int) { _ = bar.Add(1) })
	cfg2 := s.relayConfig(p2)
	s.setPublish(ctx, &cfg2, sk, new(atomic.Bool), async)
	r2, err := relay.New(cfg2)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	run2 := goRun(ctx, r2)
	// The killed relay wakes up once relay 2 has saved: its frozen last
	// save goes on.
	go func() {
		for r2.Stats().Saves == 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		j1.thaw()
	}()
	zombie := run1.wait(ctx)
	if err := run2.caughtUp(ctx); err != nil {
		return nil, fmt.Errorf("relay 2: %w", err)
	}
	run2.cancel()
	if err := run2.wait(ctx); err != nil {
		return nil, fmt.Errorf("relay 2: %w", err)
	}
	_ = bar.Exit()
	// Relay 2 published every event after the offsets it opened at: the
	// rest was saved by relay 1.
	st1, st2 := r1.Stats(), r2.Stats()
	saved := s.total - int(st2.Published)
	fmt.Fprintf(out, "relay 1: published %d, saved %d times (last at snapshot %d), killed %d events after its last save (%v)\n",
		s.killAt, st1.Saves, st2.Opened, s.killAt-saved, killedAfter)
	fmt.Fprintf(out, "relay 2: reopened at snapshot %d, published %d, saved %d times (%v)\n",
		st2.Opened, st2.Published, st2.Saves, since(start))
	switch {
	case errors.Is(zombie, store.ErrFenced):
		fmt.Fprintln(out, "fencing: the killed relay's late save was refused (store.ErrFenced)")
	case s.killAt == saved:
		fmt.Fprintln(out, "fencing: the killed relay had nothing left to save")
	case zombie == nil || errors.Is(zombie, context.Canceled) || errors.Is(zombie, leader.ErrLost) || errors.Is(zombie, errKilled):
		// Its lease was lost first (or, publishing asynchronously, its
		// acks failed with the kill), and the relay gives up unsaved marks
		// rather than write after a new leader (checkFinal below proves
		// that the newest snapshot is relay 2's, complete).
		fmt.Fprintln(out, "fencing: the killed relay dropped its unsaved marks with its lease; nothing late reached the journal")
	default:
		return nil, fmt.Errorf("the killed relay stopped with %v, want store.ErrFenced or a lost lease", zombie)
	}
	if err := s.checkFinal(ctx); err != nil {
		return nil, err
	}
	published, republished, lost := sk.result()
	return &outcome{published: published, republished: republished, lost: lost, saves: st1.Saves + st2.Saves}, nil
}

// setPublish sets cfg's publisher: into sk, nothing once dead (killed).
func (s *scenario) setPublish(ctx context.Context, cfg *relay.Config, sk *sink, dead *atomic.Bool, async bool) {
	if !async {
		cfg.Publish = func(ctx context.Context, ev journal.Event) error {
			if dead.Load() {
				<-ctx.Done() // a killed process publishes nothing more
				return ctx.Err()
			}
			s.deliver(sk, ev)
			return nil
		}
		return
	}
	b := newBroker()
	go b.run(ctx, func(w []func()) { rand.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] }) })
	cfg.PublishAsync = func(_ context.Context, ev journal.Event, ack func(error)) {
		b.enqueue(func() {
			if dead.Load() {
				ack(errKilled)
				return
			}
			s.deliver(sk, ev)
			ack(nil)
		})
	}
}

// deliver publishes ev into sk, taking --publish-delay as a broker would.
func (s *scenario) deliver(sk *sink, ev journal.Event) {
	// A spin, not a sleep: timers are too coarse for microseconds.
	for start := time.Now(); time.Since(start) < s.f.publishDelay; {
		runtime.Gosched()
	}
	sk.publish(ev.PersistenceID, ev.SequenceNr)
}

// sinkTable is the exactly-once run's sink: one row per delivery, keyed
// by a serial id (not by the event), so that a duplicate would show.
var sinkTable = pgx.Identifier{"offsetstore_demo_sink"}

// exactlyOnce runs the same kill and restart with a sink table: each
// batch's rows and the offsets commit in one transaction (SaveTx).
func (s *scenario) exactlyOnce(ctx context.Context) (*outcome, error) {
	out := s.a.stdout
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := s.admin.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+sinkTable.Sanitize()+` (
  id bigserial PRIMARY KEY, outbox text NOT NULL, persistence_id text NOT NULL, sequence_nr bigint NOT NULL)`); err != nil {
		return nil, fmt.Errorf("create the sink table: %w", err)
	}
	var written atomic.Int64 // rows written, committed or not
	killed := make(chan struct{})
	publishTx := func(kill bool) func(context.Context, pgx.Tx, []journal.Event) error {
		return func(ctx context.Context, tx pgx.Tx, events []journal.Event) error {
			rows := make([][]any, len(events))
			for i, ev := range events {
				rows[i] = []any{s.outbox, ev.PersistenceID, int64(ev.SequenceNr)}
			}
			if _, err := tx.CopyFrom(ctx, sinkTable, []string{"outbox", "persistence_id", "sequence_nr"}, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
			if n := written.Add(int64(len(events))); kill && n >= int64(s.killAt) {
				// Killed inside the transaction: it never commits.
				close(killed)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
	}

	p1, err := connect(ctx, s.url)
	if err != nil {
		return nil, err
	}
	defer p1.Close()
	cfg1 := s.relayConfig(p1)
	cfg1.PublishTx = publishTx(true)
	r1, err := relay.New(cfg1)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	run1, err := runUntil(ctx, r1, killed)
	if err != nil {
		return nil, err
	}
	if err := s.killLeader(ctx); err != nil {
		return nil, err
	}
	run1.cancel()
	if err := run1.wait(ctx); err != nil {
		return nil, fmt.Errorf("relay 1: %w", err)
	}
	st1 := r1.Stats()
	fmt.Fprintf(out, "relay 1: committed %d events in %d transactions, killed inside the next one (%d rows rolled back) (%v)\n",
		st1.Published, st1.Saves, written.Load()-st1.Published, since(start))

	p2, err := connect(ctx, s.url)
	if err != nil {
		return nil, err
	}
	defer p2.Close()
	cfg2 := s.relayConfig(p2)
	cfg2.PublishTx = publishTx(false)
	r2, err := relay.New(cfg2)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	run2 := goRun(ctx, r2)
	if err := run2.caughtUp(ctx); err != nil {
		return nil, fmt.Errorf("relay 2: %w", err)
	}
	run2.cancel()
	if err := run2.wait(ctx); err != nil {
		return nil, fmt.Errorf("relay 2: %w", err)
	}
	st2 := r2.Stats()
	fmt.Fprintf(out, "relay 2: reopened at snapshot %d, committed %d events in %d transactions (%v)\n",
		st2.Opened, st2.Published, st2.Saves, since(start))
	if err := s.checkFinal(ctx); err != nil {
		return nil, err
	}

	// The sink's rows, counted: duplicates by the events' key, lost
	// against the streams.
	var dups int
	if err := s.admin.QueryRow(ctx, `SELECT coalesce(sum(n - 1), 0) FROM (
  SELECT count(*) AS n FROM `+sinkTable.Sanitize()+` WHERE outbox = $1
   GROUP BY persistence_id, sequence_nr HAVING count(*) > 1) d`, s.outbox).Scan(&dups); err != nil {
		return nil, fmt.Errorf("count duplicates: %w", err)
	}
	sk := newSink(s.pids, s.f.events)
	rows, err := s.admin.Query(ctx, `SELECT persistence_id, sequence_nr FROM `+sinkTable.Sanitize()+` WHERE outbox = $1`, s.outbox)
	if err != nil {
		return nil, fmt.Errorf("read the sink: %w", err)
	}
	var pid string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&pid, &seq}, func() error {
		if !s.follows(pid) || seq < 1 || int(seq) > s.f.events {
			return fmt.Errorf("sink row %s/%d is no event of this run", pid, seq)
		}
		sk.publish(pid, uint64(seq))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the sink: %w", err)
	}
	published, republished, lost := sk.result()
	if republished != 0 && dups == 0 {
		return nil, fmt.Errorf("the sink's counts disagree: %d re-published, %d duplicate rows", republished, dups)
	}
	return &outcome{published: published, republished: dups, lost: lost, saves: st1.Saves + st2.Saves}, nil
}

// checkFinal checks that the outbox's offsets are at every stream's end.
func (s *scenario) checkFinal(ctx context.Context) error {
	st, err := store.Open(ctx, pgjournal.New(s.admin), s.outbox)
	if err != nil {
		return err
	}
	offsets, err := st.Load(ctx)
	if err != nil {
		return err
	}
	var behind int
	for _, pid := range s.pids {
		if offsets[pid] != uint64(s.f.events) {
			behind++
		}
	}
	if behind > 0 {
		return fmt.Errorf("outbox %s: %d streams' final offsets are not %d", s.outbox, behind, s.f.events)
	}
	return nil
}
