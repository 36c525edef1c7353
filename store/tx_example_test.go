package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// Exactly-once into a sink table in the journal's database: the sink row
// and the offsets commit in one transaction. Run against a database named
// by $DATABASE_URL, migrated, with a table sink(event text primary key).
func ExampleStore_SaveTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	offsets, err := store.Open(ctx, pgjournal.New(pool), "orders-to-read-model")
	if err != nil {
		panic(err)
	}

	// One event published: its sink row and its offset, together.
	publish := func(ctx context.Context, pid string, seq uint64) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) // a no-op once committed
		if _, err := tx.Exec(ctx, `INSERT INTO sink (event) VALUES ($1)`, fmt.Sprintf("%s/%d", pid, seq)); err != nil {
			return err
		}
		return offsets.SaveTx(ctx, pgjournal.New(tx), map[string]uint64{pid: seq}, tx.Commit)
	}

	done, _ := offsets.Load(ctx)
	next := done["order-1"] + 1
	switch err := publish(ctx, "order-1", next); {
	case err == nil:
		// Committed: the sink row and the offset.
	case errors.Is(err, store.ErrRetryTx):
		// An earlier transaction of this relay, whose commit was in
		// doubt, turned out committed. Nothing was written now: reload
		// the offsets and go on from there.
		done, _ = offsets.Load(ctx)
		fmt.Println("resume after", done["order-1"])
	case errors.Is(err, store.ErrFenced):
		// Another relay owns the outbox; this transaction was rolled back
		// with its sink row. Stop, and stand by.
		fmt.Println("fenced:", err)
	case errors.Is(err, store.ErrInDoubt):
		// The commit's reply was lost: run again what lies above Load.
		// Load is never ahead of what committed, and that run settles the
		// doubt (ErrRetryTx, before its commit, if the first one
		// committed).
		fmt.Println("run again:", err)
	default:
		// Rolled back: retry later.
		fmt.Println("retry:", err)
	}
}

// The commit function decides: the offsets follow the transaction, and a
// commit that fails leaves them as they were. Here a transaction is
// played by a journal of its own whose rows reach the store's journal
// only when committed.
func ExampleStore_SaveTx_commitDecides() {
	ctx := context.Background()
	j := journal.NewMemory() // pgjournal.New(pool) in production
	s, err := store.Open(ctx, j, "orders")
	if err != nil {
		panic(err)
	}
	// begin returns the transaction's journal and its commit.
	begin := func(fail bool) (journal.Journal, func(context.Context) error) {
		tx := journal.NewMemory() // pgjournal.New(pgxTx) in production
		return tx, func(ctx context.Context) error {
			if fail {
				return errors.New("could not serialize access")
			}
			for ev, err := range tx.Replay(ctx, s.PersistenceID(), 1, math.MaxUint64, math.MaxUint64) {
				if err != nil {
					return err
				}
				if err := j.Append(ctx, ev); err != nil {
					return err
				}
			}
			return nil
		}
	}

	tx, commit := begin(true)
	err = s.SaveTx(ctx, tx, map[string]uint64{"order-1": 3}, commit)
	m, _ := s.Load(ctx)
	fmt.Println("after a failed commit:", m, err != nil)

	tx, commit = begin(false)
	err = s.SaveTx(ctx, tx, map[string]uint64{"order-1": 3}, commit)
	m, _ = s.Load(ctx)
	fmt.Println("after a commit:", m, err)
	// Output:
	// after a failed commit: map[] true
	// after a commit: map[order-1:3] <nil>
}
