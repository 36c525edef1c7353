package pgjournal_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// feedBackend is a journal on PostgreSQL or Citus with what the
// out-of-order tests need: a pool for their own transactions and the
// journal options that name the table.
type feedBackend struct {
	name string
	open func(t *testing.T) (*pgxpool.Pool, []pgjournal.Option, pgx.Identifier)
}

var feedBackends = []feedBackend{
	{"PostgreSQL", func(t *testing.T) (*pgxpool.Pool, []pgjournal.Option, pgx.Identifier) {
		return testdb.New(t).NewPool(t, nil), nil, pgx.Identifier{pgjournal.DefaultTable}
	}},
	{"Citus", func(t *testing.T) (*pgxpool.Pool, []pgjournal.Option, pgx.Identifier) {
		db := testdb.NewCitus(t)
		return db.NewPool(t, nil), []pgjournal.Option{pgjournal.WithTable(db.Table()), pgjournal.WithCitus()}, pgx.Identifier{db.Schema, db.Name}
	}},
}

// follower follows a journal as a relay does: the feed tells which
// streams moved, ReadStreams reads them from the follower's position. It
// checks on every read that each stream comes in order, without a gap and
// without an event it has seen, and remembers which read reported what.
type follower struct {
	t      *testing.T
	j      *pgjournal.Journal
	cursor journal.FeedCursor
	pos    map[string]uint64
	reads  int
	// reportedAt: stream → the read (1, 2, …) whose feed first reported
	// it.
	reportedAt map[string]int
	// payloads: (stream, seq) → the payload read.
	payloads map[string]map[uint64]string
}

func newFollower(t *testing.T, j *pgjournal.Journal) *follower {
	t.Helper()
	c, err := j.FeedStart(t.Context())
	if err != nil {
		t.Fatalf("FeedStart: %v", err)
	}
	return &follower{t: t, j: j, cursor: c, pos: map[string]uint64{}, reportedAt: map[string]int{}, payloads: map[string]map[uint64]string{}}
}

// pass reads the feed once and the streams it reports, and returns the
// streams reported. It may run on another goroutine than the test's, so it
// returns errors instead of failing the test.
func (f *follower) pass(ctx context.Context) ([]string, error) {
	f.reads++
	var moved []journal.Position
	var names []string
	next, err := f.j.ReadFeed(ctx, f.cursor, journal.FeedOptions{ExcludePrefix: "outbox::"}, func(m journal.Moved) error {
		names = append(names, m.PersistenceID)
		if _, ok := f.reportedAt[m.PersistenceID]; !ok {
			f.reportedAt[m.PersistenceID] = f.reads
		}
		if m.Highest > f.pos[m.PersistenceID] {
			moved = append(moved, journal.Position{PersistenceID: m.PersistenceID, SequenceNr: f.pos[m.PersistenceID]})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ReadFeed: %w", err)
	}
	f.cursor = next
	for len(moved) > 0 {
		part := moved[:min(len(moved), 200)]
		moved = moved[len(part):]
		opts := journal.ReadStreamsOptions{PerStream: journal.MaxReadTotal, Total: journal.MaxReadTotal}
		for ev, err := range f.j.ReadStreams(ctx, part, opts) {
			if err != nil {
				return nil, fmt.Errorf("ReadStreams: %w", err)
			}
			pid := ev.PersistenceID
			if want := f.pos[pid] + 1; ev.SequenceNr != want {
				return nil, fmt.Errorf("stream %q: read %d after %d: out of order or a gap", pid, ev.SequenceNr, f.pos[pid])
			}
			f.pos[pid] = ev.SequenceNr
			if f.payloads[pid] == nil {
				f.payloads[pid] = map[uint64]string{}
			}
			f.payloads[pid][ev.SequenceNr] = string(ev.Payload)
		}
	}
	return names, nil
}

func (f *follower) mustPass() []string {
	f.t.Helper()
	names, err := f.pass(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	return names
}

// appendIn appends events in tx through a journal bound to it.
func appendIn(t *testing.T, tx pgx.Tx, opts []pgjournal.Option, events ...journal.Event) {
	t.Helper()
	if err := pgjournal.New(tx, opts...).Append(t.Context(), events...); err != nil {
		t.Fatalf("Append(%s/%d…) in a transaction: %v", events[0].PersistenceID, events[0].SequenceNr, err)
	}
}

func begin(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// TestFeedHeldTransaction holds a transaction open (its id taken, its rows
// written, so older than every transaction after it) across many others
// that commit and are followed, then commits it: the read after its
// commit reports it, none before. A rolled-back transaction and a
// rolled-back subtransaction are never reported. Every event is read
// once, in order.
func TestFeedHeldTransaction(t *testing.T) {
	t.Parallel()
	for _, b := range feedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			pool, opts, _ := b.open(t)
			j := pgjournal.New(pool, opts...)
			f := newFollower(t, j)

			held := begin(t, pool)
			appendIn(t, held, opts, evts("held", 1, 3)...)
			// A subtransaction: one part released (kept), one rolled back.
			if _, err := held.Exec(t.Context(), "SAVEPOINT a"); err != nil {
				t.Fatal(err)
			}
			appendIn(t, held, opts, evt("held", 4))
			if _, err := held.Exec(t.Context(), "RELEASE SAVEPOINT a"); err != nil {
				t.Fatal(err)
			}
			if _, err := held.Exec(t.Context(), "SAVEPOINT b"); err != nil {
				t.Fatal(err)
			}
			appendIn(t, held, opts, evt("held-sub-rolled-back", 1))
			if _, err := held.Exec(t.Context(), "ROLLBACK TO SAVEPOINT b"); err != nil {
				t.Fatal(err)
			}

			rolled := begin(t, pool)
			appendIn(t, rolled, opts, evts("rolled-back", 1, 2)...)

			want := map[string]uint64{"held": 4}
			for i := range 30 {
				pid := fmt.Sprintf("other-%d", i%7)
				from := want[pid] + 1
				tx := begin(t, pool)
				appendIn(t, tx, opts, evts(pid, from, from+uint64(i%3))...)
				if err := tx.Commit(t.Context()); err != nil {
					t.Fatalf("commit: %v", err)
				}
				want[pid] = from + uint64(i%3)
				if i%4 == 0 {
					if slices.Contains(f.mustPass(), "held") {
						t.Fatalf("read %d reported the held transaction before its commit", f.reads)
					}
				}
			}
			if err := rolled.Rollback(t.Context()); err != nil {
				t.Fatal(err)
			}
			before := f.reads
			if err := held.Commit(t.Context()); err != nil {
				t.Fatalf("commit the held transaction: %v", err)
			}
			f.mustPass()
			if at, ok := f.reportedAt["held"]; !ok || at != before+1 {
				t.Fatalf("the held transaction was first reported by read %d (reported: %v), want the read after its commit (%d)", at, ok, before+1)
			}
			if f.pos["held"] != 4 {
				t.Fatalf("after the held transaction's commit, its stream was read to %d, want 4", f.pos["held"])
			}
			// A stream the held transaction started goes on after it.
			appendIn2(t, j, evts("held", 5, 6)...)
			want["held"] = 6
			f.mustPass()
			for _, pid := range []string{"rolled-back", "held-sub-rolled-back"} {
				if at, ok := f.reportedAt[pid]; ok {
					t.Fatalf("rolled-back stream %q reported by read %d", pid, at)
				}
			}
			wantFollowed(t, f, want)
		})
	}
}

func appendIn2(t *testing.T, j journal.Journal, events ...journal.Event) {
	t.Helper()
	if err := j.Append(t.Context(), events...); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// wantFollowed checks that f read every stream of want up to its highest,
// each event with the payload it was written with, and nothing else.
func wantFollowed(t *testing.T, f *follower, want map[string]uint64) {
	t.Helper()
	for pid, hi := range want {
		if f.pos[pid] != hi {
			t.Fatalf("stream %q followed to %d, want %d (reported by read %d)", pid, f.pos[pid], hi, f.reportedAt[pid])
		}
		for seq := uint64(1); seq <= hi; seq++ {
			if got, w := f.payloads[pid][seq], fmt.Sprintf("%s#%d", pid, seq); got != w {
				t.Fatalf("stream %q seq %d read with payload %q, want %q", pid, seq, got, w)
			}
		}
	}
	for pid, p := range f.pos {
		if _, ok := want[pid]; !ok {
			t.Fatalf("stream %q was read (to %d) but never committed", pid, p)
		}
	}
}

// TestFeedConcurrentOutOfOrderCommits runs writers whose transactions
// overlap and commit in any order (each holds its transaction open for a
// random while, some roll back), with a follower reading the feed all the
// while: once the writers are done and one more pass has run, every
// committed event was read exactly once, in order, and nothing rolled
// back was read.
//
// On Citus each transaction writes one stream, so one worker: such a
// transaction commits on its worker before the coordinator, and the feed
// is exact for it (see TestFeedTwoPhaseOnCitus for the other kind).
func TestFeedConcurrentOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	for _, b := range feedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			pool, opts, _ := b.open(t)
			j := pgjournal.New(pool, opts...)
			f := newFollower(t, j)
			ctx := t.Context()

			const writers, streamsPerWriter = 6, 4
			duration := 3 * time.Second
			var (
				mu        sync.Mutex
				committed = map[string]uint64{}
				commits   atomic.Int64
				rollbacks atomic.Int64
			)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, writers+1)
			for w := range writers {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 26))
					heads := map[string]uint64{}
					for {
						select {
						case <-stop:
							return
						default:
						}
						pid := fmt.Sprintf("w%d-s%d", w, rng.IntN(streamsPerWriter))
						n := uint64(1 + rng.IntN(3))
						tx, err := pool.Begin(ctx)
						if err != nil {
							errs <- err
							return
						}
						// Take the id first, then hold: transactions that
						// began later commit before this one.
						if err := pgjournal.New(tx, opts...).Append(ctx, evts(pid, heads[pid]+1, heads[pid]+n)...); err != nil {
							_ = tx.Rollback(ctx)
							errs <- err
							return
						}
						time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
						if rng.IntN(8) == 0 {
							if err := tx.Rollback(ctx); err != nil {
								errs <- err
								return
							}
							rollbacks.Add(1)
							continue
						}
						if err := tx.Commit(ctx); err != nil {
							errs <- err
							return
						}
						commits.Add(1)
						heads[pid] += n
						mu.Lock()
						committed[pid] = heads[pid]
						mu.Unlock()
					}
				})
			}
			// Follow while they write, for the duration and at least ten
			// reads (a loaded machine reads slowly), at most a minute.
			followed := make(chan struct{})
			var reads atomic.Int64
			go func() {
				defer close(followed)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := f.pass(ctx); err != nil {
						errs <- err
						return
					}
					reads.Add(1)
				}
			}()
			time.Sleep(duration)
			for deadline := time.Now().Add(time.Minute); reads.Load() < 10 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			close(stop)
			wg.Wait()
			<-followed
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			f.mustPass() // after the last commit
			t.Logf("%d commits, %d rollbacks, %d feed reads", commits.Load(), rollbacks.Load(), f.reads)
			if commits.Load() < 20 || rollbacks.Load() == 0 || f.reads < 10 {
				t.Fatalf("too little happened to tell: %d commits, %d rollbacks, %d reads", commits.Load(), rollbacks.Load(), f.reads)
			}
			wantFollowed(t, f, committed)
		})
	}
}

// TestFeedWriterWithoutTheColumn: writers that know nothing of the column
// (a plain INSERT naming the old columns, a COPY) are followed too.
func TestFeedWriterWithoutTheColumn(t *testing.T) {
	t.Parallel()
	for _, b := range feedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			pool, opts, ident := b.open(t)
			j := pgjournal.New(pool, opts...)
			f := newFollower(t, j)
			if _, err := pool.Exec(t.Context(), `INSERT INTO `+ident.Sanitize()+` (persistence_id, sequence_nr, payload) VALUES ('legacy', 1, 'legacy#1')`); err != nil {
				t.Fatalf("plain insert: %v", err)
			}
			if _, err := pool.CopyFrom(t.Context(), ident, []string{"persistence_id", "sequence_nr", "payload"},
				pgx.CopyFromRows([][]any{{"legacy", int64(2), []byte("legacy#2")}, {"copied", int64(1), []byte("copied#1")}})); err != nil {
				t.Fatalf("copy: %v", err)
			}
			f.mustPass()
			wantFollowed(t, f, map[string]uint64{"legacy": 2, "copied": 1})
		})
	}
}

// TestFeedTwoPhaseOnCitus: transactions that write to streams on both
// workers commit with two-phase commit, where the feed is not exact
// (FeedExact is false). What it reports is still right; what it may miss
// a sweep of the heads finds.
func TestFeedTwoPhaseOnCitus(t *testing.T) {
	t.Parallel()
	db := testdb.NewCitus(t)
	opts := []pgjournal.Option{pgjournal.WithTable(db.Table()), pgjournal.WithCitus()}
	pool := db.NewPool(t, nil)
	j := pgjournal.New(pool, opts...)
	if j.FeedExact() {
		t.Fatal("FeedExact() is true WithCitus, want false")
	}
	// Streams on both workers.
	var a, b string
	for i := 0; a == "" || b == ""; i++ {
		pid := fmt.Sprintf("p%d", i)
		w, err := db.WorkerOf(t.Context(), pid)
		if err != nil {
			t.Fatal(err)
		}
		if a == "" {
			a = pid
			continue
		}
		if wa, _ := db.WorkerOf(t.Context(), a); w != wa {
			b = pid
		}
	}
	f := newFollower(t, j)
	want := map[string]uint64{}
	for i := range 20 {
		tx := begin(t, pool)
		appendIn(t, tx, opts, evt(a, uint64(i+1)), evt(b, uint64(i+1)))
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		want[a], want[b] = uint64(i+1), uint64(i+1)
		f.mustPass()
	}
	f.mustPass()
	// The sweep: the heads of every stream followed.
	heads, err := j.HighestSequenceNrs(t.Context(), []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	var moved []journal.Position
	for pid, h := range heads {
		if h > f.pos[pid] {
			t.Logf("stream %q: the feed missed up to %d (followed to %d); the sweep reads it", pid, h, f.pos[pid])
			moved = append(moved, journal.Position{PersistenceID: pid, SequenceNr: f.pos[pid]})
		}
	}
	for ev, err := range j.ReadStreams(t.Context(), moved, journal.ReadStreamsOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.SequenceNr != f.pos[ev.PersistenceID]+1 {
			t.Fatalf("sweep: %s/%d after %d", ev.PersistenceID, ev.SequenceNr, f.pos[ev.PersistenceID])
		}
		f.pos[ev.PersistenceID] = ev.SequenceNr
		if f.payloads[ev.PersistenceID] == nil {
			f.payloads[ev.PersistenceID] = map[uint64]string{}
		}
		f.payloads[ev.PersistenceID][ev.SequenceNr] = string(ev.Payload)
	}
	wantFollowed(t, f, want)
}

// TestFeedNeedsTheMigration: on a table without the column, ReadFeed
// says what is missing.
func TestFeedNeedsTheMigration(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	if _, err := db.Pool.Exec(t.Context(), `CREATE TABLE old_journal (LIKE journal INCLUDING ALL); ALTER TABLE old_journal DROP COLUMN xact_id`); err != nil {
		t.Fatal(err)
	}
	j := pgjournal.New(db.Pool, pgjournal.WithTable("", "old_journal"))
	c, err := j.FeedStart(t.Context())
	if err != nil {
		t.Fatalf("FeedStart: %v", err)
	}
	_, err = j.ReadFeed(t.Context(), c, journal.FeedOptions{}, func(journal.Moved) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "000003") {
		t.Fatalf("ReadFeed on a table without xact_id = %v, want an error naming migration 000003", err)
	}
	if errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("ReadFeed on a table without xact_id = %v, which is not invalid input", err)
	}
}
