package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// clusterTarget is a journal table the Citus benchmarks run on, with a
// pool on it for the raw-pgx baseline.
type clusterTarget struct {
	name  string
	pool  *pgxpool.Pool
	table string // quoted, for raw SQL
	j     *pgjournal.Journal
}

// clusterTargets returns a plain PostgreSQL journal and a Citus one
// (distributed by persistence_id), so that one run measures both.
func clusterTargets(b *testing.B) (pg, citus clusterTarget) {
	db := testdb.New(b)
	pg = clusterTarget{name: "postgres", pool: db.Pool, table: "journal", j: pgjournal.New(db.Pool)}
	cdb := testdb.NewCitus(b)
	citus = clusterTarget{name: "citus", pool: cdb.Pool, table: cdb.Ident(),
		j: pgjournal.New(cdb.Pool, pgjournal.WithTable(cdb.Table()), pgjournal.WithCitus())}
	return pg, citus
}

// rawInsert is the baseline of a save: one single-row INSERT of payload,
// autocommit, at the next sequence number of its own stream.
func (c clusterTarget) rawInsert(pid string, payload []byte) benchratio.Side {
	var seq int64
	sql := `INSERT INTO ` + c.table + ` (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
		VALUES ($1, $2, $3, $4, $5, $6)`
	return benchratio.Side{Name: c.name + "-raw-insert", Op: func(ctx context.Context) error {
		seq++
		_, err := c.pool.Exec(ctx, sql, pid, seq, payload, codec.Manifest, "raw-writer", []string{store.Tag})
		return err
	}}
}

// everyKeyMoves is a Save of n keys on c where every key moves forward,
// with the default options (retention and its pruning included).
func (c clusterTarget) everyKeyMoves(b *testing.B, n int) benchratio.Side {
	ctx := context.Background()
	offsets := benchOffsets(n)
	s, err := store.Open(ctx, c.j, "bench-"+c.name)
	if err != nil {
		b.Fatal(err)
	}
	v := uint64(n)
	return benchratio.Side{Name: c.name + "-store-save", Op: func(ctx context.Context) error {
		v++
		for k := range offsets {
			offsets[k] = v
		}
		return s.Save(ctx, offsets)
	}}
}

// BenchmarkSaveOnCitus: Save of 1 000 keys, every key moving, default
// options, on a Citus cluster beside a raw INSERT on the same cluster, and
// beside the same on plain PostgreSQL in the same run.
func BenchmarkSaveOnCitus(b *testing.B) {
	const n = 1000
	pg, citus := clusterTargets(b)
	payload, err := codec.Encode(benchOffsets(n))
	if err != nil {
		b.Fatal(err)
	}
	pgSave, citusSave := pg.everyKeyMoves(b, n), citus.everyKeyMoves(b, n)
	for _, c := range []struct {
		t    clusterTarget
		save benchratio.Side
		goal float64
	}{{pg, pgSave, 1.10}, {citus, citusSave, 1.15}} {
		b.Run(c.t.name, func(b *testing.B) {
			ns, raw := benchratio.Alternate(b, 1, 0, "", c.save, c.t.rawInsert("raw-"+c.t.name, payload))
			benchratio.Print(fmt.Sprintf("store.Save/every-key-moves/keys=%d/%s/raw-insert", n, c.t.name), ns, raw, benchratio.Goal{Max: c.goal})
		})
	}
	b.Run("citus-vs-postgres", func(b *testing.B) {
		ns, pgNs := benchratio.Alternate(b, 1, 0, "", citusSave, pgSave)
		benchratio.Print(fmt.Sprintf("store.Save/every-key-moves/keys=%d/citus/postgres", n), ns, pgNs, benchratio.Goal{})
	})
	// The raw INSERTs of the two: what the cluster itself costs.
	b.Run("raw-citus-vs-raw-postgres", func(b *testing.B) {
		ns, pgNs := benchratio.Alternate(b, 1, 0, "", citus.rawInsert("raw-cross-citus", payload), pg.rawInsert("raw-cross-pg", payload))
		benchratio.Print(fmt.Sprintf("raw-insert/keys=%d/citus/postgres", n), ns, pgNs, benchratio.Goal{})
	})
}

// BenchmarkOpenOnCitus: Open of an outbox (the load of its newest
// snapshot) on a Citus cluster beside a raw SELECT of the payload plus
// codec.Decode on the same cluster, and beside plain PostgreSQL.
func BenchmarkOpenOnCitus(b *testing.B) {
	pg, citus := clusterTargets(b)
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ctx := context.Background()
			outbox := fmt.Sprintf("open-%d", n)
			opens := map[string]benchratio.Side{}
			for _, c := range []clusterTarget{pg, citus} {
				s, err := store.Open(ctx, c.j, outbox)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Save(ctx, benchOffsets(n)); err != nil {
					b.Fatal(err)
				}
				opens[c.name] = benchratio.Side{Name: c.name + "-store-open", Op: func(ctx context.Context) error {
					s, err := store.Open(ctx, c.j, outbox)
					if err == nil && s.SequenceNr() != 1 {
						err = fmt.Errorf("opened at %d, want 1", s.SequenceNr())
					}
					return err
				}}
				sql := `SELECT payload FROM ` + c.table + ` WHERE persistence_id = $1 AND NOT deleted ORDER BY sequence_nr DESC LIMIT 1`
				raw := benchratio.Side{Name: c.name + "-raw-select", Op: func(ctx context.Context) error {
					var payload []byte
					if err := c.pool.QueryRow(ctx, sql, store.PersistenceID(outbox)).Scan(&payload); err != nil {
						return err
					}
					m, err := codec.Decode(payload)
					if err == nil && len(m) != n {
						err = fmt.Errorf("%d keys, want %d", len(m), n)
					}
					return err
				}}
				b.Run(c.name, func(b *testing.B) {
					ns, rawNs := benchratio.Alternate(b, 1, 0, "", opens[c.name], raw)
					benchratio.Print(fmt.Sprintf("store.Open/keys=%d/%s/raw-select", n, c.name), ns, rawNs, benchratio.Goal{Max: 1.10})
				})
			}
			b.Run("citus-vs-postgres", func(b *testing.B) {
				ns, pgNs := benchratio.Alternate(b, 1, 0, "", opens["citus"], opens["postgres"])
				benchratio.Print(fmt.Sprintf("store.Open/keys=%d/citus/postgres", n), ns, pgNs, benchratio.Goal{})
			})
		})
	}
}
