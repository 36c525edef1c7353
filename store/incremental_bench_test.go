package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/benchratio"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// perKeyTable is what a user would pick instead of the store: one row per
// key, primary key (outbox, key), the shape of Akka Projections' and
// Watermill's SQL offset stores.
const perKeyTable = `CREATE TABLE perkey_offsets (
    outbox text   NOT NULL,
    key    text   NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (outbox, key))`

// perKeyUpsert writes the moved keys with ONE multi-row upsert.
const perKeyUpsert = `INSERT INTO perkey_offsets (outbox, key, seq)
SELECT 'bench', k, s FROM unnest($1::text[], $2::bigint[]) AS m(k, s)
ON CONFLICT (outbox, key) DO UPDATE SET seq = excluded.seq`

// fillPerKey fills the per-key table with offsets, by COPY.
func fillPerKey(b *testing.B, pool *pgxpool.Pool, offsets map[string]uint64) {
	b.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, perKeyTable); err != nil {
		b.Fatal(err)
	}
	rows := make([][]any, 0, len(offsets))
	for k, v := range offsets {
		rows = append(rows, []any{"bench", k, int64(v)})
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"perkey_offsets"}, []string{"outbox", "key", "seq"}, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE perkey_offsets`); err != nil {
		b.Fatal(err)
	}
}

// walMeter attributes the server's WAL to the operations that wrote it:
// every Setup (untimed) reads the WAL insert position and gives what was
// written since the previous reading to the side that ran in between.
type walMeter struct {
	pool  *pgxpool.Pool
	lsn   int64
	last  string
	bytes map[string]int64
	ops   map[string]int64
}

func newWALMeter(pool *pgxpool.Pool) *walMeter {
	return &walMeter{pool: pool, bytes: map[string]int64{}, ops: map[string]int64{}}
}

func (w *walMeter) read() (int64, error) {
	var lsn int64
	err := w.pool.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn`).Scan(&lsn)
	return lsn, err
}

// next reads the position before side's next operation.
func (w *walMeter) next(side string) error {
	lsn, err := w.read()
	if err != nil {
		return err
	}
	if w.last != "" {
		w.bytes[w.last] += lsn - w.lsn
		w.ops[w.last]++
	}
	w.lsn, w.last = lsn, side
	return nil
}

// close attributes the WAL since the last reading.
func (w *walMeter) close() error { return w.next("") }

// perOp returns side's mean WAL bytes per operation.
func (w *walMeter) perOp(side string) float64 {
	return float64(w.bytes[side]) / float64(max(w.ops[side], 1))
}

// incrementalSizes are the outbox sizes and keys moved per save of the
// comparison with the per-key table, with DESIGN's time goals.
var incrementalSizes = []struct {
	keys, moved int
	goal        float64
}{
	{10_000, 100, 0.5},
	{100_000, 1_000, 0.25},
	{1_000_000, 1_000, 0.25},
}

// BenchmarkIncrementalSave is the large outbox with a small change: an
// outbox of n keys, m random keys moving per save, incremental mode with
// the default options (compactions and prunes included), beside the
// per-key table filled with the same keys and written with one upsert of
// the moved keys. The run covers at least two compactions; time per save
// and WAL bytes per save are compared.
func BenchmarkIncrementalSave(b *testing.B) {
	for _, size := range incrementalSizes {
		b.Run(fmt.Sprintf("keys=%d/moved=%d", size.keys, size.moved), func(b *testing.B) {
			ctx := context.Background()
			db := testdb.New(b)
			all := benchOffsets(size.keys)
			keys := clonedKeys(all)
			fillPerKey(b, db.Pool, all)
			s, err := store.Open(ctx, pgjournal.New(db.Pool), "bench", store.WithIncremental())
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Save(ctx, all); err != nil {
				b.Fatal(err)
			}
			wal := newWALMeter(db.Pool)
			v := uint64(size.keys) + 1
			rng := rand.New(rand.NewPCG(1, 2))
			pick := func() map[string]uint64 {
				v++
				m := make(map[string]uint64, size.moved)
				for len(m) < size.moved {
					m[keys[rng.IntN(len(keys))]] = v
				}
				return m
			}
			var storeBatch, tableBatch map[string]uint64
			var tableKeys []string
			var tableSeqs []int64
			storeSide := benchratio.Side{Name: "incremental-save",
				Setup: func() error { storeBatch = pick(); return wal.next("store") },
				Op:    func(ctx context.Context) error { return s.Save(ctx, storeBatch) }}
			tableSide := benchratio.Side{Name: "perkey-upsert",
				Setup: func() error {
					tableBatch = pick()
					tableKeys, tableSeqs = tableKeys[:0], tableSeqs[:0]
					for k, v := range tableBatch {
						tableKeys = append(tableKeys, k)
						tableSeqs = append(tableSeqs, int64(v))
					}
					return wal.next("table")
				},
				Op: func(ctx context.Context) error {
					_, err := db.Pool.Exec(ctx, perKeyUpsert, tableKeys, tableSeqs)
					return err
				}}
			// Two compactions at least: one full snapshot per size/moved
			// saves at the default ratio (and per DefaultMaxDeltas deltas).
			perCompaction := min(size.keys/size.moved, store.DefaultMaxDeltas) + 1
			before := s.Stats().Writes
			full0 := s.Info().SequenceNr
			ns, table := benchratio.Alternate(b, 2*perCompaction+2, 0, "", storeSide, tableSide)
			if err := wal.close(); err != nil {
				b.Fatal(err)
			}
			compactions := countFull(b, db, s, full0)
			b.ReportMetric(float64(compactions), "compactions")
			b.ReportMetric(wal.perOp("store"), "incremental-wal-B/save")
			b.ReportMetric(wal.perOp("table"), "perkey-wal-B/save")
			if compactions < 2 {
				b.Fatalf("%d compactions in %d saves: the run must cover two", compactions, s.Stats().Writes-before)
			}
			name := fmt.Sprintf("store.Save/incremental/keys=%d/moved=%d", size.keys, size.moved)
			benchratio.Print(name+"/perkey-upsert", ns, table, benchratio.Goal{Max: size.goal})
			benchratio.Print(name+"/wal/perkey-upsert", wal.perOp("store"), wal.perOp("table"), benchratio.Goal{Max: 0.25})
		})
	}
}

// countFull counts the full snapshots s wrote above row from: the
// compactions of the run.
func countFull(b *testing.B, db *testdb.DB, s *store.Store, from uint64) int {
	b.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM journal
		WHERE persistence_id = $1 AND sequence_nr > $2 AND manifest = 'outbox-offsets'`, s.PersistenceID(), int64(from)).Scan(&n); err != nil {
		b.Fatal(err)
	}
	// Pruned full snapshots are gone from the table: count the writes the
	// store saw as full instead, when more.
	return max(n, int(s.Stats().Compactions))
}

// BenchmarkIncrementalEveryKeyMoves is incremental mode where a change
// names every key: it must cost what full mode costs (it writes full
// snapshots), beside a full-mode store of the same keys.
func BenchmarkIncrementalEveryKeyMoves(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ctx := context.Background()
			db := testdb.New(b)
			j := pgjournal.New(db.Pool)
			inc, err := store.Open(ctx, j, "incremental", store.WithIncremental())
			if err != nil {
				b.Fatal(err)
			}
			full, err := store.Open(ctx, j, "full")
			if err != nil {
				b.Fatal(err)
			}
			allInc, allFull := benchOffsets(n), benchOffsets(n)
			for _, x := range []struct {
				s   *store.Store
				all map[string]uint64
			}{{inc, allInc}, {full, allFull}} {
				if err := x.s.Save(ctx, x.all); err != nil {
					b.Fatal(err)
				}
			}
			wal := newWALMeter(db.Pool)
			v := uint64(n)
			move := func(m map[string]uint64) {
				v++
				for k := range m {
					m[k] = v
				}
			}
			incSide := benchratio.Side{Name: "incremental-save",
				Setup: func() error { move(allInc); return wal.next("incremental") },
				Op:    func(ctx context.Context) error { return inc.Save(ctx, allInc) }}
			fullSide := benchratio.Side{Name: "full-save",
				Setup: func() error { move(allFull); return wal.next("full") },
				Op:    func(ctx context.Context) error { return full.Save(ctx, allFull) }}
			ns, f := benchratio.Alternate(b, 1, 0, "", incSide, fullSide)
			if err := wal.close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(wal.perOp("incremental"), "incremental-wal-B/save")
			b.ReportMetric(wal.perOp("full"), "full-wal-B/save")
			benchratio.Print(fmt.Sprintf("store.Save/incremental/every-key-moves/keys=%d/full-save", n), ns, f, benchratio.Goal{Max: 1.05})
		})
	}
}

// BenchmarkOpenLoadMillion is Open and Load of a 1 000 000-key outbox, in
// full mode and in incremental mode after a chain of typical length (half
// the default bound: deltas of 1 000 keys whose bytes are half the full
// snapshot's), beside a SELECT key, seq of the per-key table's 1 000 000
// rows into a map.
func BenchmarkOpenLoadMillion(b *testing.B) {
	const n, moved = 1_000_000, 1_000
	ctx := context.Background()
	db := testdb.New(b)
	all := benchOffsets(n)
	fillPerKey(b, db.Pool, all)
	j := pgjournal.New(db.Pool)
	for _, mode := range []struct {
		name string
		opts []store.Option
	}{{"full", nil}, {"incremental", []store.Option{store.WithIncremental()}}} {
		s, err := store.Open(ctx, j, mode.name, append(mode.opts, store.WithoutPruning())...)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Save(ctx, all); err != nil {
			b.Fatal(err)
		}
		if mode.opts != nil {
			keys := clonedKeys(all)
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range n / moved / 2 {
				m := make(map[string]uint64, moved)
				for len(m) < moved {
					m[keys[rng.IntN(n)]] = uint64(n + i + 1)
				}
				if err := s.Save(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			if info := s.Info(); info.Chain < n/moved/2 {
				b.Fatalf("chain of %d deltas, want %d", info.Chain, n/moved/2)
			}
		}
	}
	table := benchratio.Side{Name: "perkey-select", Op: func(ctx context.Context) error {
		rows, err := db.Pool.Query(ctx, `SELECT key, seq FROM perkey_offsets WHERE outbox = 'bench'`)
		if err != nil {
			return err
		}
		m := make(map[string]uint64)
		var k string
		var v int64
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { m[k] = uint64(v); return nil })
		if err == nil && len(m) != n {
			err = fmt.Errorf("read %d keys", len(m))
		}
		return err
	}}
	for _, mode := range []string{"full", "incremental"} {
		b.Run("mode="+mode, func(b *testing.B) {
			open := benchratio.Side{Name: "open-load", Op: func(ctx context.Context) error {
				s, err := store.Open(ctx, j, mode)
				if err != nil {
					return err
				}
				m, err := s.Load(ctx)
				if err == nil && len(m) != n {
					err = fmt.Errorf("loaded %d keys", len(m))
				}
				return err
			}}
			ns, t := benchratio.Alternate(b, 1, 0, "", open, table)
			benchratio.Print(fmt.Sprintf("store.Open+Load/%s/keys=%d/perkey-select", mode, n), ns, t, benchratio.Goal{Max: 1.0})
		})
	}
}

// BenchmarkMemoryPerKey reports the heap a store holds per key of a
// 1 000 000-key outbox: after Open, and after a save (in full mode the
// indexed snapshot replaces the map; in incremental mode a delta keeps
// the map); in incremental mode also after a compaction (the indexed
// snapshot) and a delta on it.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	db := testdb.New(b)
	j := pgjournal.New(db.Pool)
	all := benchOffsets(n)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for _, mode := range []struct {
		name string
		opts []store.Option
	}{{"full", nil}, {"incremental", []store.Option{store.WithIncremental()}}} {
		b.Run("mode="+mode.name, func(b *testing.B) {
			func() {
				w, err := store.Open(ctx, j, mode.name, mode.opts...)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Save(ctx, all); err != nil {
					b.Fatal(err)
				}
			}()
			var opened, saved, compacted, after float64
			for b.Loop() {
				base := heap()
				s, err := store.Open(ctx, j, mode.name, mode.opts...)
				if err != nil {
					b.Fatal(err)
				}
				opened = float64(heap()-base) / n
				if err := s.Save(ctx, map[string]uint64{"order-0000001": uint64(b.N) + n + 10}); err != nil {
					b.Fatal(err)
				}
				saved = float64(heap()-base) / n
				if mode.opts != nil {
					if err := s.Save(ctx, benchOffsetsAt(n, uint64(b.N)+n+20)); err != nil { // every key: a compaction
						b.Fatal(err)
					}
					compacted = float64(heap()-base) / n
					if err := s.Save(ctx, map[string]uint64{"order-0000002": uint64(b.N) + n + 30}); err != nil {
						b.Fatal(err)
					}
					after = float64(heap()-base) / n
				}
				runtime.KeepAlive(s)
			}
			b.ReportMetric(opened, "B/key-opened")
			b.ReportMetric(saved, "B/key-saved")
			if mode.opts != nil {
				b.ReportMetric(compacted, "B/key-compacted")
				b.ReportMetric(after, "B/key-delta-after")
			}
			fmt.Printf("memory name=store/%s/keys=%d opened=%.1fB/key saved=%.1fB/key compacted=%.1fB/key delta-after=%.1fB/key\n",
				mode.name, n, opened, saved, compacted, after)
		})
	}
}

// BenchmarkCompactionRatio is how the compaction bound was chosen: for an
// outbox of 100 000 keys with 1 000 moving per save, the time and WAL
// bytes per save (compactions and prunes included, over 600 saves) and the
// bytes an Open reads at most, at ratios 0.5, 1 and 2.
func BenchmarkCompactionRatio(b *testing.B) {
	const n, moved, saves = 100_000, 1_000, 600
	for _, ratio := range []float64{0.5, 1, 2} {
		b.Run(fmt.Sprintf("ratio=%.1f", ratio), func(b *testing.B) {
			ctx := context.Background()
			db := testdb.New(b)
			all := benchOffsets(n)
			keys := clonedKeys(all)
			s, err := store.Open(ctx, pgjournal.New(db.Pool), "ratio", store.WithIncremental(), store.WithCompactionRatio(ratio))
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Save(ctx, all); err != nil {
				b.Fatal(err)
			}
			wal := newWALMeter(db.Pool)
			rng := rand.New(rand.NewPCG(5, 6))
			v := uint64(n)
			var took float64
			maxChain := 0
			for b.Loop() {
				for range saves {
					v++
					m := make(map[string]uint64, moved)
					for len(m) < moved {
						m[keys[rng.IntN(n)]] = v
					}
					if err := wal.next("save"); err != nil {
						b.Fatal(err)
					}
					start := time.Now()
					if err := s.Save(ctx, m); err != nil {
						b.Fatal(err)
					}
					took += float64(time.Since(start).Nanoseconds())
					maxChain = max(maxChain, s.Info().Chain)
				}
			}
			if err := wal.close(); err != nil {
				b.Fatal(err)
			}
			var fullBytes, chainBytes int64
			if err := db.Pool.QueryRow(ctx, `SELECT
				coalesce(max(length(payload)) FILTER (WHERE manifest = 'outbox-offsets'), 0),
				coalesce(avg(length(payload)) FILTER (WHERE manifest = 'outbox-offsets-delta'), 0)::bigint
				FROM journal WHERE persistence_id = $1`, s.PersistenceID()).Scan(&fullBytes, &chainBytes); err != nil {
				b.Fatal(err)
			}
			perSave := took / float64(saves*b.N)
			b.ReportMetric(perSave, "ns/save")
			b.ReportMetric(wal.perOp("save"), "wal-B/save")
			b.ReportMetric(float64(s.Stats().Compactions), "compactions")
			b.ReportMetric(float64(fullBytes+int64(maxChain)*chainBytes), "open-max-B")
			fmt.Printf("compaction ratio=%.1f save=%.2fms wal=%.0fB/save compactions=%d open-reads-at-most=%.1fMB\n",
				ratio, perSave/1e6, wal.perOp("save"), s.Stats().Compactions, float64(fullBytes+int64(maxChain)*chainBytes)/1e6)
		})
	}
}

// benchOffsetsAt is benchOffsets(n) with every value v.
func benchOffsetsAt(n int, v uint64) map[string]uint64 {
	m := benchOffsets(n)
	for k := range m {
		m[k] = v
	}
	return m
}
