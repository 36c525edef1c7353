package store_test

import (
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

func serializablePool(t *testing.T) *pgxpool.Pool {
	return testdb.New(t).NewPool(t, testdb.DefaultIsolation("serializable"))
}

// The whole store suite holds with SERIALIZABLE as the default isolation.
func TestStoreOnPostgresSerializable(t *testing.T) {
	t.Parallel()
	runSuite(t, func(t *testing.T) journal.Journal { return pgjournal.New(serializablePool(t)) })
}

// Under SERIALIZABLE the loser of a race for one sequence number may get a
// serialization failure instead of a unique violation. The store resolves
// it as a conflict: the loser is fenced at once, never told "outcome
// unknown".
func TestSerializableLoserIsFenced(t *testing.T) {
	t.Parallel()
	j := pgjournal.New(serializablePool(t))
	ctx := t.Context()
	rounds := 300
	if testing.Short() {
		rounds = 30
	}
	var fenced int
	for r := range rounds {
		outbox := fmt.Sprintf("ser-%d", r)
		a, b := open(t, j, outbox), open(t, j, outbox)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*store.Store{a, b} {
			wg.Go(func() { errs[i] = s.Save(ctx, map[string]uint64{fmt.Sprint("k", i): 1}) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrFenced):
				fenced++
			default:
				t.Fatalf("round %d: the loser's Save failed with %q, want ErrFenced", r, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d saves succeeded (%v), want exactly 1", r, ok, errs)
		}
	}
	t.Logf("%d races under SERIALIZABLE: %d losers fenced at once", rounds, fenced)
}
