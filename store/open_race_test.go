package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// plainJournal hides every optional interface of a journal, so that the
// store takes the paths a journal with only the Journal methods gives it.
// between, if set, runs inside HighestSequenceNr: a peer's write that
// lands between two reads.
type plainJournal struct {
	journal.Journal
	between func()
}

func (p *plainJournal) HighestSequenceNr(ctx context.Context, pid string) (uint64, error) {
	if f := p.between; f != nil {
		p.between = nil
		f()
	}
	return p.Journal.HighestSequenceNr(ctx, pid)
}

// A peer's first snapshot committed between the reads of Open (on a
// journal that cannot read the head in one step) is loaded, not
// overwritten: the opener never starts from empty offsets at the peer's
// sequence number.
func TestOpenSeesPeerBetweenReads(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T) {
		mem := journal.NewMemory()
		peer := open(t, mem, "raced")
		save(t, peer, map[string]uint64{"early": 1}) // in incremental mode the peer's next row is a delta
		pj := &plainJournal{Journal: mem}
		pj.between = func() { save(t, peer, map[string]uint64{"peer": 7}) }
		s := open(t, pj, "raced")
		wantOffsets(t, load(t, s), map[string]uint64{"early": 1, "peer": 7})
		save(t, s, map[string]uint64{"mine": 1})
		wantNewest(t, mem, "raced", map[string]uint64{"early": 1, "peer": 7, "mine": 1})
	})
}

// Open and a peer's first and later saves race, many times, on Postgres:
// whatever the interleaving, no snapshot ever loses a key that a writer
// saved successfully.
func TestOpenRacesPeerSaves(t *testing.T) {
	t.Parallel()
	bothModes(t, testOpenRacesPeerSaves)
}

func testOpenRacesPeerSaves(t *testing.T) {
	db := testdb.New(t)
	pool := db.NewPool(t, func(c *pgxpool.Config) { c.MaxConns = 6 })
	j := pgjournal.New(pool)
	ctx := t.Context()
	rounds := 400
	if testing.Short() {
		rounds = 50
	}
	var fenced, loaded int
	for r := range rounds {
		outbox := fmt.Sprintf("race-%d", r)
		// The peer may already have written some snapshots: the race is
		// then with its later saves.
		peer := open(t, j, outbox)
		for k := range r % 3 {
			save(t, peer, map[string]uint64{fmt.Sprintf("early-%d", k): 1})
		}
		var wg sync.WaitGroup
		var peerErr, openErr, mineErr error
		var s *store.Store
		wg.Go(func() { peerErr = peer.Save(ctx, map[string]uint64{"peer": uint64(r + 1)}) })
		wg.Go(func() {
			if s, openErr = store.Open(ctx, j, outbox, modeOf(t)...); openErr == nil {
				mineErr = s.Save(ctx, map[string]uint64{"mine": uint64(r + 1)})
			}
		})
		wg.Wait()
		if peerErr != nil && !errors.Is(peerErr, store.ErrFenced) {
			t.Fatalf("round %d: peer Save: %v", r, peerErr)
		}
		if openErr != nil {
			t.Fatalf("round %d: Open: %v", r, openErr)
		}
		if mineErr != nil && !errors.Is(mineErr, store.ErrFenced) {
			t.Fatalf("round %d: opener's Save: %v", r, mineErr)
		}
		newest := newestOffsets(t, j, outbox)
		for k := range r % 3 {
			if _, ok := newest[fmt.Sprintf("early-%d", k)]; !ok {
				t.Fatalf("round %d: the newest snapshot %v lost the peer's earlier key early-%d", r, newest, k)
			}
		}
		if peerErr == nil && newest["peer"] != uint64(r+1) {
			t.Fatalf("round %d: the peer's Save succeeded but the newest snapshot %v lacks its key", r, newest)
		}
		if mineErr == nil && newest["mine"] != uint64(r+1) {
			t.Fatalf("round %d: the opener's Save succeeded but the newest snapshot %v lacks its key", r, newest)
		}
		if errors.Is(mineErr, store.ErrFenced) {
			fenced++
		} else if peerErr == nil {
			loaded++
		}
	}
	t.Logf("%d rounds: opener fenced %d times, loaded the peer's snapshot %d times", rounds, fenced, loaded)
}

// newestOffsets returns the offsets of the newest live snapshot row of
// outbox, as a fresh store loads them (a full snapshot and, in incremental
// mode, the deltas above it).
func newestOffsets(t *testing.T, j journal.Journal, outbox string) map[string]uint64 {
	t.Helper()
	if _, ok, err := j.Last(t.Context(), store.PersistenceID(outbox)); err != nil || !ok {
		t.Fatalf("Last(%s) = %v, %v", outbox, ok, err)
	}
	s, err := store.Open(t.Context(), j, outbox)
	if err != nil {
		t.Fatalf("open %s: %v", outbox, err)
	}
	return load(t, s)
}

func wantNewest(t *testing.T, j journal.Journal, outbox string, want map[string]uint64) {
	t.Helper()
	wantOffsets(t, newestOffsets(t, j, outbox), want)
}

// Deleting an outbox's stream to its highest row (a journal-level wipe,
// never done by the store) is the explicit way to reset an outbox: Open
// then starts from empty offsets above the highest number, and the first
// save succeeds.
func TestOpenAfterWipeStartsEmpty(t *testing.T) {
	t.Parallel()
	for name, newJournal := range map[string]newJournalFunc{"Memory": memoryJournal, "Postgres": postgresJournal} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			j := newJournal(t)
			s := open(t, j, "wiped")
			for i := range 3 {
				save(t, s, map[string]uint64{"a": uint64(i + 1)})
			}
			if err := j.DeleteTo(t.Context(), s.PersistenceID(), s.SequenceNr()); err != nil {
				t.Fatal(err)
			}
			again := open(t, j, "wiped")
			wantOffsets(t, load(t, again), map[string]uint64{})
			if got := again.SequenceNr(); got != 3 {
				t.Fatalf("SequenceNr after the wipe = %d, want 3 (above the highest row)", got)
			}
			save(t, again, map[string]uint64{"b": 1})
			wantNewest(t, j, "wiped", map[string]uint64{"b": 1})
		})
	}
}

// On a journal without NextAppender, a stale writer whose next sequence
// number another writer already wrote and pruned is fenced all the same:
// its row lands under the newer head, and the store reads the head after
// the plain Append.
func TestPlainJournalStaleWriterFenced(t *testing.T) {
	t.Parallel()
	bothModes(t, testPlainJournalStaleWriterFenced)
}

func testPlainJournalStaleWriterFenced(t *testing.T) {
	for name, newJournal := range map[string]newJournalFunc{"Memory": memoryJournal, "Postgres": postgresJournal} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			plain := &plainJournal{Journal: newJournal(t)}
			stale := open(t, plain, "o")
			save(t, stale, map[string]uint64{"k": 1})
			// Enough saves that, in incremental mode too, a full snapshot
			// above the stale writer's number lets the prune remove it.
			owner := open(t, plain, "o", store.WithRetention(1), store.WithPruneInterval(1))
			for v := uint64(10); v < 16; v++ {
				save(t, owner, map[string]uint64{"k": v})
			}
			if _, ok, err := plain.Last(t.Context(), owner.PersistenceID()); err != nil || !ok {
				t.Fatal("no newest row")
			}
			if rows := rows(t, plain, owner.PersistenceID()); rows[0].SequenceNr <= 2 {
				t.Fatalf("row %d, the stale writer's next number, was not pruned", rows[0].SequenceNr)
			}
			err := stale.Save(t.Context(), map[string]uint64{"k": 2})
			var f *store.FencedError
			if !errors.As(err, &f) || f.Writer != owner.WriterID() {
				t.Fatalf("stale writer's Save = %v, want ErrFenced naming the owner %q", err, owner.WriterID())
			}
			if err := stale.Save(t.Context(), map[string]uint64{"k": 3}); !errors.Is(err, store.ErrFenced) {
				t.Fatalf("next Save = %v, want ErrFenced", err)
			}
			wantNewest(t, plain, "o", map[string]uint64{"k": 15})
		})
	}
}
