package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// benchOffsets returns n keys of 13 bytes: a 1 000-key snapshot is 25 KB.
func benchOffsets(n int) map[string]uint64 {
	m := make(map[string]uint64, n)
	for i := range n {
		m[fmt.Sprintf("order-%07d", i)] = uint64(i + 1)
	}
	return m
}

// BenchmarkSave compares Save of a 1 000-key snapshot with a raw INSERT of
// the same bytes (one statement, autocommit), and with the statement
// sequence of the original implementation.
func BenchmarkSave(b *testing.B) {
	ctx := context.Background()
	db := testdb.New(b)
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE journal_tags (persistence_id text, sequence_nr bigint, tag text)`); err != nil {
		b.Fatal(err)
	}
	offsets := benchOffsets(1000)
	payload, _ := codec.Encode(offsets)
	b.Logf("snapshot: %d keys, %d bytes", len(offsets), len(payload))

	s, err := store.Open(ctx, pgjournal.New(db.Pool), "bench", store.WithRetention(1<<30))
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Save(ctx, offsets); err != nil {
		b.Fatal(err)
	}
	// Each Save moves one key forward: a new 25 KB snapshot row.
	v := uint64(1 << 20)
	storeSide := benchratio.Side{Name: "store-save", Op: func(ctx context.Context) error {
		v++
		return s.Save(ctx, map[string]uint64{"order-0000000": v})
	}}
	var seq int64
	rawSide := benchratio.Side{Name: "raw-insert", Op: func(ctx context.Context) error {
		seq++
		_, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
			VALUES ($1, $2, $3, $4, $5, $6)`, "raw", seq, payload, codec.Manifest, "raw-writer", []string{store.Tag})
		return err
	}}
	origSide := benchratio.Side{Name: "original-sequence", Op: func(ctx context.Context) error {
		return originalSave(ctx, db.Pool, "original", payload)
	}}
	b.Run("vs-raw-insert", func(b *testing.B) {
		ns, raw := benchratio.Alternate(b, 1, 0, "", storeSide, rawSide)
		benchratio.Print("store.Save/raw-insert", ns, raw, benchratio.Goal{Max: 1.15})
	})
	b.Run("vs-original-sequence", func(b *testing.B) {
		ns, orig := benchratio.Alternate(b, 1, 0, "", storeSide, origSide)
		// original/store: how many times faster Save is.
		benchratio.Print("store.Save-speedup-over-original-sequence", orig, ns, benchratio.Goal{Min: 1.4})
	})
}

// originalSave is the statement sequence the original implementation ran
// for one save: read max, begin, read max again, insert the row, insert its
// tag row, commit.
func originalSave(ctx context.Context, pool *pgxpool.Pool, pid string, payload []byte) error {
	var hi int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(sequence_nr), 0) FROM journal WHERE persistence_id = $1`, pid).Scan(&hi); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(sequence_nr), 0) FROM journal WHERE persistence_id = $1`, pid).Scan(&hi); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest, writer_uuid)
			VALUES ($1, $2, $3, $4, $5)`, pid, hi+1, payload, codec.Manifest, "orig-writer"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO journal_tags (persistence_id, sequence_nr, tag) VALUES ($1, $2, $3)`, pid, hi+1, store.Tag)
		return err
	})
}

// BenchmarkOpen compares Open (the load of the newest snapshot) of an
// outbox with 1 row of history against one with 1 000 000 rows.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	db := testdb.New(b)
	payload, _ := codec.Encode(benchOffsets(1000))
	small, big := store.PersistenceID("small"), store.PersistenceID("big")
	if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest)
		SELECT $1, g, '\x00000000'::bytea, $2 FROM generate_series(1, 999999) AS g`, big, codec.Manifest); err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct {
		pid string
		seq int64
	}{{small, 1}, {big, 1000000}} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, manifest) VALUES ($1, $2, $3, $4)`,
			r.pid, r.seq, payload, codec.Manifest); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE journal`); err != nil {
		b.Fatal(err)
	}
	j := pgjournal.New(db.Pool)
	open := func(outbox string) benchratio.Side {
		return benchratio.Side{Name: "history-" + outbox, Op: func(ctx context.Context) error {
			s, err := store.Open(ctx, j, outbox)
			if err == nil && s.SequenceNr() == 0 {
				err = fmt.Errorf("nothing loaded for %s", outbox)
			}
			return err
		}}
	}
	ns1M, ns1 := benchratio.Alternate(b, 1, 0, "", open("big"), open("small"))
	benchratio.Print("store.Open/1M-rows-vs-1-row", ns1M, ns1, benchratio.Goal{Max: 1.2})
}
