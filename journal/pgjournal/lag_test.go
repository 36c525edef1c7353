package pgjournal_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// roundTrips counts what a pool sends: statements on their own and
// batches (a pipelined batch is one round trip, however many statements).
type roundTrips struct {
	queryRecorder
	mu      sync.Mutex
	batches []int // statements per batch
}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, data.Batch.Len())
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// count returns the statements sent alone and the batches since the last
// call, and forgets them.
func (r *roundTrips) count() (statements int, batches []int) {
	r.mu.Lock()
	batches, r.batches = r.batches, nil
	r.mu.Unlock()
	// A batch's statements reach TraceQueryStart too on some paths; count
	// only the ones outside batches.
	return len(r.take()), batches
}

// StreamLags of 25 000 positions on 30 000 streams, 10 % of them behind:
// three statements pipelined in one batch (one round trip), each position
// one index probe, each one behind a second, and only the positions that
// are not at their head come back.
func TestStreamLagsCost(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	rec := &roundTrips{}
	pool := db.NewPool(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = rec })
	j := pgjournal.New(pool)
	ctx := t.Context()
	fillStreams(t, ctx, db.Pool, "journal", 30_000, 3, 10)
	const n = 2*pgjournal.MaxLagBatch + 5000
	positions := make([]journal.Position, n)
	behind := 0
	for i := range positions {
		p := journal.Position{PersistenceID: fmt.Sprintf("stream-%06d", i+1), SequenceNr: 3}
		if i%10 == 0 {
			p.SequenceNr = 1
			behind++
		}
		positions[i] = p
	}
	rec.count()
	got, err := j.StreamLags(ctx, positions)
	if err != nil {
		t.Fatal(err)
	}
	statements, batches := rec.count()
	if statements != 0 || !slices.Equal(batches, []int{3}) {
		t.Fatalf("StreamLags of %d positions sent %d statements alone and batches %v, want one batch of 3", n, statements, batches)
	}
	if len(got) != behind {
		t.Fatalf("StreamLags reported %d streams, want the %d behind", len(got), behind)
	}
	for _, l := range got {
		if l.Offset != 1 || l.Highest != 3 || l.NextWrittenAt.IsZero() {
			t.Fatalf("StreamLags reported %+v, want offset 1, highest 3 and a time", l)
		}
	}
	// The plan of one statement: a probe per position, a second per
	// position behind, no sequential scan.
	part := positions[:pgjournal.MaxLagBatch]
	pids, offs := make([]string, len(part)), make([]int64, len(part))
	for i, p := range part {
		pids[i], offs[i] = p.PersistenceID, int64(p.SequenceNr)
	}
	nodes, scanned := planOf(t, db.Pool, recordedQuery{sql: pgjournal.LagSQL("journal"), args: []any{pids, offs}})
	t.Logf("plan %v, %v rows read for %d positions", nodes, scanned, len(part))
	if slices.Contains(nodes, "Seq Scan") || scanned > float64(len(part)+len(part)/10+10) {
		t.Fatalf("plan %v read %v rows for %d positions (10%% behind): want one probe each and one more per position behind", nodes, scanned, len(part))
	}
	// Through a single connection (no pool), the same answer.
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	again, err := pgjournal.New(conn).StreamLags(ctx, positions)
	if err != nil || len(again) != len(got) {
		t.Fatalf("StreamLags through a connection = %d streams, %v; want %d", len(again), err, len(got))
	}
}

// Known written_at values, set by the test: the time reported is the
// first live event's above the offset, to the microsecond.
func TestStreamLagsWrittenAt(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	_, err := db.Pool.Exec(ctx, `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at)
SELECT 'order-1', n, '\x00', $1::timestamptz + n * interval '1 minute' + interval '7 microseconds'
  FROM generate_series(1, 10) AS n`, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []*pgjournal.Journal{pgjournal.New(db.Pool), pgjournal.New(db.Pool, pgjournal.WithCitus())} {
		got, err := j.StreamLags(ctx, []journal.Position{{PersistenceID: "order-1", SequenceNr: 4}})
		if err != nil {
			t.Fatal(err)
		}
		want := base.Add(5*time.Minute + 7*time.Microsecond)
		if len(got) != 1 || got[0].Highest != 10 || !got[0].NextWrittenAt.Equal(want) {
			t.Fatalf("StreamLags = %+v, want highest 10 and the time of event 5, %v", got, want)
		}
	}
}
