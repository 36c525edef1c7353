package pgjournal_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// statementCounter counts the statements whose SQL contains marker.
type statementCounter struct {
	marker string
	n      atomic.Int64
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, c.marker) {
		c.n.Add(1)
	}
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestHighestSequenceNrsBeforeKnownTimes checks the statement on rows
// whose written_at the test sets: microsecond boundaries (a time between
// two microseconds, which pgx would truncate), a stream whose written_at
// does not grow with its sequence numbers, and both shapes of the
// statement (WithCitus's grouped read on a single PostgreSQL too).
func TestHighestSequenceNrsBeforeKnownTimes(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, time.December, 1, 9, 0, 0, 0, time.UTC)
	rows := []struct {
		pid string
		seq int
		at  time.Time
	}{
		{"a", 1, base},
		{"a", 2, base.Add(time.Second)},
		{"a", 3, base.Add(2*time.Second + time.Microsecond)},
		// Written out of order: 2 before 1 (a clock set back, or a
		// transaction that began earlier and committed later).
		{"b", 1, base.Add(time.Hour)},
		{"b", 2, base},
		{"b", 3, base.Add(2 * time.Hour)},
	}
	for _, citus := range []bool{false, true} {
		t.Run(fmt.Sprintf("citus=%v", citus), func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			for _, r := range rows {
				if _, err := db.Pool.Exec(t.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at) VALUES ($1, $2, '\x00', $3)`,
					r.pid, r.seq, r.at); err != nil {
					t.Fatal(err)
				}
			}
			var opts []pgjournal.Option
			if citus {
				opts = append(opts, pgjournal.WithCitus())
			}
			j := pgjournal.New(db.Pool, opts...)
			for _, tc := range []struct {
				name string
				at   time.Time
				a, b uint64
			}{
				{"at a's first", base, 0, 0},
				// b: 2 is the highest written before, though 1 was written
				// later: the highest, as documented, not the first after.
				{"a nanosecond after", base.Add(time.Nanosecond), 1, 2},
				{"at a's second", base.Add(time.Second), 1, 2},
				{"half a microsecond before a's third", base.Add(2*time.Second + 500*time.Nanosecond), 2, 2},
				{"at a's third", base.Add(2*time.Second + time.Microsecond), 2, 2},
				{"half a microsecond after a's third", base.Add(2*time.Second + 1500*time.Nanosecond), 3, 2},
				{"between b's 1 and 3", base.Add(90 * time.Minute), 3, 2},
				{"after everything", base.Add(3 * time.Hour), 3, 3},
			} {
				got, err := j.HighestSequenceNrsBefore(t.Context(), []string{"a", "b", "c"}, tc.at)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if got["a"] != tc.a || got["b"] != tc.b || got["c"] != 0 || len(got) != 3 {
					t.Fatalf("%s (%v): got %v, want a %d, b %d, c 0", tc.name, tc.at.Format(time.RFC3339Nano), got, tc.a, tc.b)
				}
			}
		})
	}
}

// TestHighestSequenceNrsBeforeBatches: one statement per MaxHighestBatch
// distinct ids, every id answered.
func TestHighestSequenceNrsBeforeBatches(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	const n = pgjournal.MaxHighestBatch + 1
	if _, err := db.Pool.Exec(t.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at)
		SELECT 'p' || k, s, '\x00', now() - interval '1 hour' + s * interval '1 minute'
		  FROM generate_series(1, $1::int) AS k, generate_series(1, 3) AS s`, n); err != nil {
		t.Fatal(err)
	}
	counter := &statementCounter{marker: "written_at <"}
	pool := db.NewPool(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = counter })
	j := pgjournal.New(pool)
	ids := make([]string, 0, n+2)
	for k := 1; k <= n; k++ {
		ids = append(ids, fmt.Sprintf("p%d", k))
	}
	ids = append(ids, "p1", "absent") // a repeat, and an id without rows
	got, err := j.HighestSequenceNrsBefore(t.Context(), ids, time.Now().Add(-time.Hour+150*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c := counter.n.Load(); c != 2 {
		t.Fatalf("%d statements for %d distinct ids, want 2 (MaxHighestBatch %d)", c, n+1, pgjournal.MaxHighestBatch)
	}
	if len(got) != n+1 || got["absent"] != 0 {
		t.Fatalf("%d entries, absent %d; want %d and 0", len(got), got["absent"], n+1)
	}
	for k := 1; k <= n; k++ {
		if v := got[fmt.Sprintf("p%d", k)]; v != 2 {
			t.Fatalf("p%d = %d, want 2", k, v)
		}
	}
}
