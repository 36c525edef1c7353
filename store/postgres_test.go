package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/internal/faultproxy"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// viaProxy returns a pool on db whose connections pass through a fault
// proxy.
func viaProxy(t *testing.T, db *testdb.DB) (*pgxpool.Pool, *faultproxy.Proxy) {
	t.Helper()
	return faultproxy.Pool(t, db, db.URL, nil)
}

// TestLostAckOnPostgres cuts the connection right after the server
// committed a snapshot and before the client heard of it.
func TestLostAckOnPostgres(t *testing.T) {
	t.Parallel()

	t.Run("AdoptedAtOnce", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		db := testdb.New(t)
		pool, proxy := viaProxy(t, db)
		writer := fmt.Sprintf("writer-%p", t)
		s, err := store.Open(ctx, pgjournal.New(pool), "acked", store.WithWriterID(writer))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		save(t, s, map[string]uint64{"a": 1})
		proxy.DropReplyAfter([]byte(writer))
		save(t, s, map[string]uint64{"a": 2})
		if proxy.Dropped.Load() != 1 || proxy.Armed() {
			t.Fatalf("the proxy dropped %d replies (armed %v); the fault did not happen", proxy.Dropped.Load(), proxy.Armed())
		}
		if st := s.Stats(); st.Adopted != 1 {
			t.Fatalf("Adopted = %d, want 1", st.Adopted)
		}
		wantOffsets(t, load(t, open(t, pgjournal.New(db.Pool), "acked")), map[string]uint64{"a": 2})
	})

	// Once through the journal's AppendNext, once through plain Append.
	for _, plain := range []bool{false, true} {
		name := "AdoptedAtNextWrite"
		if plain {
			name += "PlainAppend"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := testdb.New(t)
			pool, proxy := viaProxy(t, db)
			writer := fmt.Sprintf("writer-%p", t)
			fj := faultjournal.New(pgjournal.New(pool))
			var j journal.Journal = fj
			if plain {
				j = fj.Plain()
			}
			s, err := store.Open(ctx, j, "acked2", store.WithWriterID(writer))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			save(t, s, map[string]uint64{"a": 1})
			proxy.DropReplyAfter([]byte(writer))
			fj.FailLast.Store(1)
			err = s.Save(ctx, map[string]uint64{"a": 2})
			if err == nil || errors.Is(err, store.ErrFenced) {
				t.Fatalf("Save with a cut connection = %v, want a connection error", err)
			}
			if proxy.Dropped.Load() != 1 {
				t.Fatalf("the proxy dropped %d replies; the fault did not happen", proxy.Dropped.Load())
			}
			wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
			save(t, s, map[string]uint64{"b": 7})
			want := map[string]uint64{"a": 2, "b": 7}
			wantOffsets(t, load(t, s), want)
			wantOffsets(t, load(t, open(t, pgjournal.New(db.Pool), "acked2")), want)
		})
	}

	t.Run("TerminatedBackend", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		db := testdb.New(t)
		s := open(t, pgjournal.New(db.Pool), "term")
		save(t, s, map[string]uint64{"a": 1})
		if _, err := db.TerminateBackends(ctx); err != nil {
			t.Fatal(err)
		}
		// The pool's idle connection is dead: this save fails or succeeds
		// on a fresh connection; the one after it must succeed, and no
		// save that returned nil is lost.
		err1 := s.Save(ctx, map[string]uint64{"a": 2})
		save(t, s, map[string]uint64{"a": 3})
		if errors.Is(err1, store.ErrFenced) {
			t.Fatalf("Save after terminate = %v: spurious ErrFenced", err1)
		}
		wantOffsets(t, load(t, open(t, pgjournal.New(db.Pool), "term")), map[string]uint64{"a": 3})
	})
}
