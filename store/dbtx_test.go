package store_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// ownDBTX is a DBTX of a caller's own around a pool: no batches (so
// AppendNext and AppendSuccessor send their conditional insert alone),
// and, while failHighest is set, a failing read of a stream's highest
// sequence number.
type ownDBTX struct {
	pgjournal.DBTX
	failHighest atomic.Bool
}

func (d *ownDBTX) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if d.failHighest.Load() && strings.Contains(sql, "coalesce(max(sequence_nr), 0)") {
		return errRow{errors.New("test: connection lost")}
	}
	return d.DBTX.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// A store whose journal runs on a handle other than a pool or a
// connection (a connection acquired from a pool, *pgxpool.Conn, which
// confirms; a DBTX of the caller's own, which cannot) writes, reopens and
// writes again, instead of failing every write after an Open of an outbox
// that has rows (the confirmation of what Open loaded refused the handle).
func TestStoreOnOtherHandles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.New(t)
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	for name, j := range map[string]journal.Journal{
		"pgxpool.Conn": pgjournal.New(c),
		"own DBTX":     pgjournal.New(&ownDBTX{DBTX: db.Pool}),
	} {
		for _, mode := range []struct {
			name string
			opts []store.Option
		}{{"full", nil}, {"incremental", []store.Option{store.WithIncremental()}}} {
			outbox := strings.ReplaceAll(name, " ", "-") + "-" + mode.name
			s := open(t, j, outbox, mode.opts...)
			save(t, s, map[string]uint64{"a": 1})
			s = open(t, j, outbox, mode.opts...)
			if err := s.Save(ctx, map[string]uint64{"b": 1}); err != nil {
				t.Fatalf("%s, %s: Save after Open = %v, want nil", name, mode.name, err)
			}
			wantOffsets(t, load(t, open(t, j, outbox)), map[string]uint64{"a": 1, "b": 1})
		}
	}
}
