package pgjournal_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/journaltest"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// The handles DBTX is meant for.
var (
	_ pgjournal.DBTX = (*pgxpool.Pool)(nil)
	_ pgjournal.DBTX = (*pgx.Conn)(nil)
	_ pgjournal.DBTX = pgx.Tx(nil)
)

// smallPool is the pool size the conformance suite asks for: a leaked
// connection exhausts it and fails the test.
func smallPool(cfg *pgxpool.Config) { cfg.MaxConns = 3 }

func TestConformance(t *testing.T) {
	t.Parallel()
	// Default threshold: small batches INSERT, large ones COPY.
	journaltest.Run(t, func(t *testing.T) journal.Journal {
		return pgjournal.New(testdb.New(t).NewPool(t, smallPool))
	})
}

// Every batch through COPY, so that this path passes the whole contract
// (conflicts, atomicity, odd tags) too: the default threshold sends most
// of the suite's batches through INSERT … unnest.
func TestConformanceCopyOnly(t *testing.T) {
	t.Parallel()
	journaltest.Run(t, func(t *testing.T) journal.Journal {
		j := pgjournal.New(testdb.New(t).NewPool(t, smallPool))
		pgjournal.ForceCopy(j)
		return j
	})
}

// In the simple protocol pgx sends every value as text and reads results
// in the text format, as it does behind PgBouncer's transaction pooling.
func TestConformanceSimpleProtocol(t *testing.T) {
	t.Parallel()
	journaltest.Run(t, func(t *testing.T) journal.Journal {
		return pgjournal.New(testdb.New(t).NewPool(t, func(cfg *pgxpool.Config) {
			smallPool(cfg)
			cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		}))
	})
}

// TestConformanceConn runs the suite on one *pgx.Conn, without a pool. A
// connection runs one statement at a time, so the groups that call the
// journal concurrently, or from inside a Replay loop, are left out: on a
// single connection those are the caller's to serialise. So is Context:
// pgx closes a connection whose context ends mid-statement, which a pool
// replaces and a lone *pgx.Conn cannot survive.
func TestConformanceConn(t *testing.T) {
	t.Parallel()
	factory := func(t *testing.T) journal.Journal {
		db := testdb.New(t)
		conn, err := pgx.Connect(t.Context(), db.URL)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return pgjournal.New(conn)
	}
	for name, run := range map[string]func(*testing.T, journaltest.Factory){
		"Basics":     journaltest.RunBasics,
		"Conflicts":  journaltest.RunConflicts,
		"Validation": journaltest.RunValidation,
		"DeleteTo":   journaltest.RunDeleteTo,
		"Isolation":  journaltest.RunIsolation,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run(t, factory)
		})
	}
}

// appendPaths are Append's two statements, each forced on every batch.
var appendPaths = []struct {
	name  string
	force func(*pgjournal.Journal)
}{
	{"copy", pgjournal.ForceCopy},
	{"insert", pgjournal.ForceInsert},
}

func evt(pid string, seq uint64) journal.Event {
	return journal.Event{
		PersistenceID: pid,
		SequenceNr:    seq,
		Payload:       fmt.Appendf(nil, "%s#%d", pid, seq),
		Manifest:      "m",
		WriterUUID:    "w",
		Tags:          []string{"t"},
	}
}

func evts(pid string, from, to uint64) []journal.Event {
	var events []journal.Event
	for seq := from; seq <= to; seq++ {
		events = append(events, evt(pid, seq))
	}
	return events
}

func count(t *testing.T, db pgjournal.DBTX, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func seqsOf(t *testing.T, j journal.Journal, pid string) []uint64 {
	t.Helper()
	events, err := journaltest.Collect(j.Replay(t.Context(), pid, 0, math.MaxUint64, math.MaxUint64))
	if err != nil {
		t.Fatalf("Replay(%q): %v", pid, err)
	}
	var seqs []uint64
	for _, ev := range events {
		seqs = append(seqs, ev.SequenceNr)
	}
	return seqs
}

// Append on a caller's transaction joins it, on both paths: the rows
// appear with its commit and vanish with its rollback.
func TestAppendInCallerTx(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	outside := pgjournal.New(db.Pool)
	for _, path := range appendPaths {
		for _, commit := range []bool{true, false} {
			name := fmt.Sprintf("%s/commit=%v", path.name, commit)
			t.Run(name, func(t *testing.T) {
				pid := name
				tx, err := db.Pool.Begin(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(context.Background())
				j := pgjournal.New(tx)
				path.force(j)
				if err := j.Append(t.Context(), evts(pid, 1, 3)...); err != nil {
					t.Fatalf("Append in tx: %v", err)
				}
				// Visible inside, not outside, before the end.
				if got := seqsOf(t, j, pid); !slices.Equal(got, []uint64{1, 2, 3}) {
					t.Fatalf("inside the tx: %v", got)
				}
				if got := seqsOf(t, outside, pid); got != nil {
					t.Fatalf("outside the tx before its end: %v", got)
				}
				if commit {
					err = tx.Commit(t.Context())
				} else {
					err = tx.Rollback(t.Context())
				}
				if err != nil {
					t.Fatal(err)
				}
				want := []uint64(nil)
				if commit {
					want = []uint64{1, 2, 3}
				}
				if got := seqsOf(t, outside, pid); !slices.Equal(got, want) {
					t.Fatalf("after the tx: %v, want %v", got, want)
				}
			})
		}
	}
}

// A conflict inside a caller's transaction fails the transaction, as any
// failed statement does, and leaves it to the caller to roll back.
func TestConflictInCallerTx(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	if err := pgjournal.New(db.Pool).Append(t.Context(), evt("p", 1)); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	err = pgjournal.New(tx).Append(t.Context(), evt("p", 2), evt("p", 1))
	var ce *journal.ConflictError
	if !errors.As(err, &ce) || ce.PersistenceID != "p" || ce.SequenceNr != 1 {
		t.Fatalf("Append in tx = %v, want a conflict on (p, 1)", err)
	}
}

func TestWithTableOtherSchema(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	const schema, table = `Other "schema"`, "Events"
	ident := pgx.Identifier{schema, table}.Sanitize()
	for _, stmt := range []string{
		"CREATE SCHEMA " + pgx.Identifier{schema}.Sanitize(),
		"CREATE TABLE " + ident + " (LIKE journal INCLUDING ALL)",
	} {
		if _, err := db.Pool.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	j := pgjournal.New(db.Pool, pgjournal.WithTable(schema, table))
	for _, path := range appendPaths {
		path.force(j)
		pid := "p-" + path.name
		if err := j.Append(t.Context(), evts(pid, 1, 3)...); err != nil {
			t.Fatalf("Append: %v", err)
		}
		err := j.Append(t.Context(), evt(pid, 4), evt(pid, 2))
		if ce := new(journal.ConflictError); !errors.As(err, &ce) || ce.PersistenceID != pid || ce.SequenceNr != 2 {
			t.Fatalf("duplicate Append = %v, want a conflict on (%s, 2)", err, pid)
		}
	}
	if err := j.DeleteTo(t.Context(), "p-copy", 2); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(t, j, "p-copy"); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("Replay = %v", got)
	}
	if h, err := j.HighestSequenceNr(t.Context(), "p-copy"); err != nil || h != 3 {
		t.Fatalf("HighestSequenceNr = %d, %v", h, err)
	}
	if ev, ok, err := j.Last(t.Context(), "p-copy"); err != nil || !ok || ev.SequenceNr != 3 {
		t.Fatalf("Last = %d, %v, %v", ev.SequenceNr, ok, err)
	}
	if n := count(t, db.Pool, ident); n != 4 {
		t.Fatalf("%s holds %d rows, want 4", ident, n)
	}
	if n := count(t, db.Pool, "journal"); n != 0 {
		t.Fatalf("the default journal table holds %d rows, want 0", n)
	}
	// The default table of the search_path is untouched by the other journal.
	if h, err := pgjournal.New(db.Pool).HighestSequenceNr(t.Context(), "p-copy"); err != nil || h != 0 {
		t.Fatalf("default journal: HighestSequenceNr = %d, %v", h, err)
	}
}

// A table name with quotes, a semicolon, a comment and spaces is quoted,
// never interpreted: the journal works on that table and the real
// journal table is untouched.
func TestHostileTableName(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	names := []string{
		`journal"; DROP TABLE journal; --`,
		`journal'; DROP TABLE journal; --`,
		`x" (persistence_id) VALUES ('a'); DROP TABLE journal; --`,
		`journal WHERE true; --`,
	}
	seed := pgjournal.New(db.Pool)
	if err := seed.Append(t.Context(), evts("keep", 1, 2)...); err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		ident := pgx.Identifier{name}.Sanitize()
		if _, err := db.Pool.Exec(t.Context(), "CREATE TABLE "+ident+" (LIKE journal INCLUDING ALL)"); err != nil {
			t.Fatalf("create %s: %v", ident, err)
		}
		j := pgjournal.New(db.Pool, pgjournal.WithTable("", name))
		pid := fmt.Sprint("hostile-", i)
		for _, path := range appendPaths {
			path.force(j)
			if err := j.DeleteTo(t.Context(), pid, math.MaxUint64); err != nil {
				t.Fatalf("%s: DeleteTo: %v", name, err)
			}
			h, err := j.HighestSequenceNr(t.Context(), pid)
			if err != nil {
				t.Fatalf("%s: HighestSequenceNr: %v", name, err)
			}
			if err := j.Append(t.Context(), evt(pid, h+1), evt(pid, h+2)); err != nil {
				t.Fatalf("%s: Append: %v", name, err)
			}
			if _, _, err := j.Last(t.Context(), pid); err != nil {
				t.Fatalf("%s: Last: %v", name, err)
			}
			if err := j.Append(t.Context(), evt(pid, h+3), evt(pid, h+1)); !errors.Is(err, journal.ErrSequenceConflict) {
				t.Fatalf("%s: duplicate Append = %v, want a conflict", name, err)
			}
		}
		// 1 and 2 from the first round, 2 kept as the deleted highest.
		if got := seqsOf(t, j, pid); !slices.Equal(got, []uint64{3, 4}) {
			t.Fatalf("%s: Replay = %v, want [3 4]", name, got)
		}
		if n := count(t, db.Pool, ident); n != 3 {
			t.Fatalf("%s holds %d rows, want 3", ident, n)
		}
	}
	// The real table still exists, with exactly its own rows.
	if got := seqsOf(t, seed, "keep"); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("journal table: Replay(keep) = %v, want [1 2]", got)
	}
	if n := count(t, db.Pool, "journal"); n != 2 {
		t.Fatalf("journal table holds %d rows, want 2", n)
	}
}

func TestInvalidTableOption(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	cases := []struct{ schema, table string }{
		{"", "jour\x00nal"},
		{"pub\x00lic", "journal"},
		{"", "\xff"},
		{strings.Repeat("s", 64), "journal"},
		{"", strings.Repeat("ü", 32)}, // 64 bytes
	}
	for _, tc := range cases {
		j := pgjournal.New(db.Pool, pgjournal.WithTable(tc.schema, tc.table))
		errs := map[string]error{"Append": j.Append(t.Context(), evt("p", 1)), "DeleteTo": j.DeleteTo(t.Context(), "p", 1)}
		_, errs["HighestSequenceNr"] = j.HighestSequenceNr(t.Context(), "p")
		_, _, errs["Last"] = j.Last(t.Context(), "p")
		_, errs["Replay"] = journaltest.Collect(j.Replay(t.Context(), "p", 1, 2, 3))
		for op, err := range errs {
			if !errors.Is(err, journal.ErrInvalidArgument) {
				t.Errorf("WithTable(%q, %q): %s = %v, want journal.ErrInvalidArgument", tc.schema, tc.table, op, err)
			}
		}
	}
	// An empty table name is the default table; 63 bytes is fine.
	for i, opt := range []pgjournal.Option{pgjournal.WithTable("", ""), pgjournal.WithTable("public", "")} {
		j := pgjournal.New(db.Pool, opt)
		if err := j.Append(t.Context(), evt(fmt.Sprint("default-", i), 1)); err != nil {
			t.Fatalf("Append with an empty table name: %v", err)
		}
	}
	if n := count(t, db.Pool, "journal"); n != 2 {
		t.Fatalf("journal holds %d rows, want 2", n)
	}
	long := strings.Repeat("t", 63)
	if _, err := db.Pool.Exec(t.Context(), "CREATE TABLE "+long+" (LIKE journal INCLUDING ALL)"); err != nil {
		t.Fatal(err)
	}
	if err := pgjournal.New(db.Pool, pgjournal.WithTable("", long)).Append(t.Context(), evt("p", 1), evt("p", 2)); err != nil {
		t.Fatalf("63-byte table name: %v", err)
	}
}

// NUL bytes never reach the driver: every method rejects them first.
func TestNULInPersistenceID(t *testing.T) {
	t.Parallel()
	j := pgjournal.New(testdb.New(t).Pool)
	const pid = "a\x00b"
	errs := map[string]error{
		"Append":   j.Append(t.Context(), evt(pid, 1)),
		"DeleteTo": j.DeleteTo(t.Context(), pid, 1),
	}
	_, errs["HighestSequenceNr"] = j.HighestSequenceNr(t.Context(), pid)
	_, _, errs["Last"] = j.Last(t.Context(), pid)
	_, errs["Replay"] = journaltest.Collect(j.Replay(t.Context(), pid, 1, 2, 3))
	for op, err := range errs {
		var ie *journal.InvalidArgumentError
		if !errors.As(err, &ie) {
			t.Errorf("%s = %v (%T), want a *journal.InvalidArgumentError", op, err, err)
		}
	}
}

// Persistence ids that the detail of a unique violation cannot quote:
// ", ", ")", ")=(", the English message itself, and digits after a comma.
var trickyPIDs = []string{
	"a, 5",
	"a, 5)",
	"x)=(y, 3) already exists.",
	"b, 7) already exists. c",
	"(persistence_id, sequence_nr)=(z, 1)",
	"d, 12), e",
	"plain",
}

// A conflict in a large batch names the right event, whichever path the
// batch takes and however odd its persistence id, and writes nothing.
func TestConflictInLargeBatch(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	for _, pid := range trickyPIDs {
		if err := j.Append(t.Context(), evts(pid, 1, 5)...); err != nil {
			t.Fatalf("seed %q: %v", pid, err)
		}
	}
	seeded := count(t, db.Pool, "journal")
	for _, path := range appendPaths {
		path.force(j)
		for ti, pid := range trickyPIDs {
			for _, at := range []int{0, 499, 999} {
				// 1000 new events across every tricky pid, one of them a
				// copy of an existing (pid, 3); seq 3 of other pids exists
				// too, and "pid, 3" style strings appear in the others.
				batch := make([]journal.Event, 0, 1000)
				for i := range 1000 {
					other := trickyPIDs[(ti+1+i)%len(trickyPIDs)]
					batch = append(batch, evt(other, uint64(100+i)))
				}
				batch[at] = evt(pid, 3)
				err := j.Append(t.Context(), batch...)
				var ce *journal.ConflictError
				if !errors.As(err, &ce) || !errors.Is(err, journal.ErrSequenceConflict) {
					t.Fatalf("%s, pid %q at %d: Append = %v, want a *journal.ConflictError", path.name, pid, at, err)
				}
				if ce.PersistenceID != pid || ce.SequenceNr != 3 {
					t.Fatalf("%s, pid %q at %d: conflict names (%q, %d)", path.name, pid, at, ce.PersistenceID, ce.SequenceNr)
				}
				if ce.Err == nil {
					t.Fatalf("conflict without the driver's error")
				}
			}
			// A duplicate inside the batch, of a new position.
			batch := evts(pid, 6, 1005)
			batch[800] = evt(pid, 6+500)
			err := j.Append(t.Context(), batch...)
			var ce *journal.ConflictError
			if !errors.As(err, &ce) || ce.PersistenceID != pid || ce.SequenceNr != 506 {
				t.Fatalf("%s, pid %q: duplicate within the batch: %v, want a conflict on 506", path.name, pid, err)
			}
		}
	}
	if n := count(t, db.Pool, "journal"); n != seeded {
		t.Fatalf("journal holds %d rows after failed batches, want %d", n, seeded)
	}
}

// The conflict's event, read back from PostgreSQL's detail text whatever
// the message's language, or the best that can be said without it.
func TestLocateConflict(t *testing.T) {
	t.Parallel()
	batch := []journal.Event{evt("a, 5", 7), evt("a", 5), evt("b", 1), evt("a, 5) x", 2), evt("b", 2)}
	cases := []struct {
		detail string
		events []journal.Event
		pid    string
		seq    uint64
	}{
		{"Key (persistence_id, sequence_nr)=(a, 5, 7) already exists.", batch, "a, 5", 7},
		{"Key (persistence_id, sequence_nr)=(a, 5) already exists.", batch, "a", 5},
		{"Key (persistence_id, sequence_nr)=(a, 5) x, 2) already exists.", batch, "a, 5) x", 2},
		// German and French: the suffix is unknown, the batch decides.
		{"Schlüssel »(persistence_id, sequence_nr)=(a, 5, 7)« existiert bereits.", batch, "a, 5", 7},
		{"La clé « (persistence_id, sequence_nr)=(a, 5) x, 2) » existe déjà.", batch, "a, 5) x", 2},
		{"Schlüssel »(persistence_id, sequence_nr)=(b, 2)« existiert bereits.", batch, "b", 2},
		// No detail, or one naming nothing in the batch.
		{"", batch, "", 0},
		{"Key (persistence_id, sequence_nr)=(zz, 1) already exists.", batch, "", 0},
		{"", []journal.Event{evt("p", 1), evt("p", 2)}, "p", 0},
		{"Key (persistence_id, sequence_nr)=(p, +2) already exists.", []journal.Event{evt("p", 1), evt("p", 2)}, "p", 0},
		// One event is the conflict, whatever the detail says.
		{"", []journal.Event{evt("q", 9)}, "q", 9},
	}
	for _, tc := range cases {
		pid, seq := pgjournal.LocateConflict(tc.detail, tc.events)
		if pid != tc.pid || seq != tc.seq {
			t.Errorf("LocateConflict(%q) = (%q, %d), want (%q, %d)", tc.detail, pid, seq, tc.pid, tc.seq)
		}
	}
}

// Breaking out of Replay returns the connection to the pool: with one
// connection, the next statement gets it.
func TestReplayEarlyBreakReleasesConnection(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	pool := db.NewPool(t, func(cfg *pgxpool.Config) { cfg.MaxConns = 1 })
	j := pgjournal.New(pool)
	if err := j.Append(t.Context(), evts("p", 1, 2000)...); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for ev, err := range j.Replay(t.Context(), "p", 1, math.MaxUint64, math.MaxUint64) {
			if err != nil || ev.SequenceNr != 1 {
				t.Fatalf("Replay: %d, %v", ev.SequenceNr, err)
			}
			break
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		h, err := j.HighestSequenceNr(ctx, "p")
		cancel()
		if err != nil || h != 2000 {
			t.Fatalf("HighestSequenceNr after a break = %d, %v; want 2000 (connection not released?)", h, err)
		}
	}
	if st := pool.Stat(); st.AcquiredConns() != 0 {
		t.Fatalf("%d connections still acquired", st.AcquiredConns())
	}
}

// A context that ends while a statement waits on the server yields an
// error matching the context's error, on every path.
func TestContextEndsWhileWaiting(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	// Another transaction inserts (p, 1) and keeps it uncommitted: an Append
	// of the same key waits for it.
	tx, err := db.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if err := pgjournal.New(tx).Append(t.Context(), evt("p", 1)); err != nil {
		t.Fatal(err)
	}
	for _, path := range appendPaths {
		path.force(j)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(200*time.Millisecond, cancel)
		if err := j.Append(ctx, evt("p", 2), evt("p", 1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: cancelled Append = %v, want context.Canceled", path.name, err)
		}
		ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
		err := j.Append(ctx, evt("p", 1))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: timed-out Append = %v, want context.DeadlineExceeded", path.name, err)
		}
	}
	// DeleteTo waits on the row lock of an uncommitted UPDATE.
	if err := j.Append(t.Context(), evts("q", 1, 2)...); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "UPDATE journal SET manifest = 'x' WHERE persistence_id = 'q'"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := j.DeleteTo(ctx, "q", 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out DeleteTo = %v, want context.DeadlineExceeded", err)
	}
	// What the server makes of the abandoned statements is not asserted:
	// pgx gives up on the connection, but the backend finishes the
	// statement once the lock is free, unless it is cancelled on the
	// server (see the package documentation).
}

// The row DeleteTo keeps as the highest keeps its content, and only that
// row is kept.
func TestDeleteToKeepsHighestRow(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	in := evts("p", 1, 5)
	in[4].Tags = []string{"x", "y"}
	if err := j.Append(t.Context(), in...); err != nil {
		t.Fatal(err)
	}
	if err := j.DeleteTo(t.Context(), "p", math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Pool.Query(t.Context(), `SELECT sequence_nr, payload, manifest, writer_uuid, tags, deleted FROM journal`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Seq      int64
		Payload  []byte
		Manifest string
		Writer   string
		Tags     []string
		Deleted  bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	want := row{5, in[4].Payload, "m", "w", []string{"x", "y"}, true}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("rows after DeleteTo: %+v, want only %+v", got, want)
	}
}

// DeleteTo racing appends to the same stream never lowers the highest
// sequence nr and never loses an event above what it was asked to delete.
func TestDeleteToConcurrentAppends(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	j := pgjournal.New(db.NewPool(t, func(cfg *pgxpool.Config) { cfg.MaxConns = 4 }))
	const pid, n = "race", 300
	ctx := t.Context()
	done := make(chan error, 1)
	go func() {
		for seq := uint64(1); seq <= n; seq++ {
			if err := j.Append(ctx, evt(pid, seq)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var lastHighest uint64
	for appending := true; appending; {
		h, err := j.HighestSequenceNr(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if h < lastHighest {
			t.Fatalf("HighestSequenceNr went down from %d to %d", lastHighest, h)
		}
		lastHighest = h
		if err := j.DeleteTo(ctx, pid, h); err != nil {
			t.Fatalf("DeleteTo(%d): %v", h, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			appending = false
		default:
		}
	}
	if h, err := j.HighestSequenceNr(ctx, pid); err != nil || h != n {
		t.Fatalf("HighestSequenceNr = %d, %v; want %d", h, err, n)
	}
	// Every event above the last DeleteTo's bound is still there, and
	// nothing at or below it.
	var want []uint64
	for seq := lastHighest + 1; seq <= n; seq++ {
		want = append(want, seq)
	}
	if got := seqsOf(t, j, pid); !slices.Equal(got, want) {
		t.Fatalf("after the race: %v, want %d..%d", got, lastHighest+1, n)
	}
	if lastHighest == 0 || lastHighest == n {
		t.Logf("no overlap between appends and deletes (last bound %d)", lastHighest)
	}
}

// Text that array literals and binary encodings get wrong reads back
// unchanged through each of Append's three statements.
func TestOddTextOnEveryPath(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	odd := []string{"plain", "a,b", "{braces}", `"quoted"`, `back\slash`, `\"`, "NULL", "null", "", " spaced ", "ü✓", "dup", "dup", "'", "a\tb\nc"}
	batch := func(pid string, n int) []journal.Event {
		events := evts(pid, 1, uint64(n))
		for i := range events {
			events[i].Tags = slices.Clone(odd[:i%len(odd)+1])
			events[i].Manifest = odd[i%len(odd)]
			events[i].WriterUUID = odd[(i+3)%len(odd)]
			if i%4 == 0 {
				events[i].Tags = nil
			}
		}
		return events
	}
	paths := append([]struct {
		name  string
		force func(*pgjournal.Journal)
	}{{"default", func(*pgjournal.Journal) {}}}, appendPaths...)
	for _, path := range paths {
		for _, n := range []int{1, 2, 20} {
			pid := fmt.Sprintf("%s-%d", path.name, n)
			in := batch(pid, n)
			j := pgjournal.New(db.Pool)
			path.force(j)
			if err := j.Append(t.Context(), in...); err != nil {
				t.Fatalf("%s: Append: %v", pid, err)
			}
			got, err := journaltest.Collect(j.Replay(t.Context(), pid, 0, math.MaxUint64, math.MaxUint64))
			if err != nil || len(got) != n {
				t.Fatalf("%s: Replay = %d events, %v", pid, len(got), err)
			}
			for i, ev := range got {
				want := in[i]
				if !slices.Equal(ev.Tags, want.Tags) { // nil and empty are equal here
					t.Fatalf("%s: event %d: tags %q, want %q", pid, i+1, ev.Tags, want.Tags)
				}
				if ev.Manifest != want.Manifest || ev.WriterUUID != want.WriterUUID || string(ev.Payload) != string(want.Payload) {
					t.Fatalf("%s: event %d: %+v, want %+v", pid, i+1, ev, want)
				}
			}
		}
	}
}

// Tags that Append cannot write, but another writer of the table can,
// are decoded by pgx: a two-dimensional array is flattened, and a NULL
// element is an error, yielded once.
func TestReplayForeignTags(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	if _, err := db.Pool.Exec(t.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, tags)
		VALUES ('p', 1, '', '{{a,b},{c,d}}'), ('p', 2, '', '[0:1]={x,y}'), ('q', 1, '', '{a,NULL}')`); err != nil {
		t.Fatal(err)
	}
	j := pgjournal.New(db.Pool)
	events, err := journaltest.Collect(j.Replay(t.Context(), "p", 0, math.MaxUint64, math.MaxUint64))
	if err != nil || len(events) != 2 {
		t.Fatalf("Replay(p) = %d events, %v", len(events), err)
	}
	if got := events[0].Tags; !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("two-dimensional tags read as %q", got)
	}
	if got := events[1].Tags; !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("tags with lower bound 0 read as %q", got)
	}
	n := 0
	for _, err := range j.Replay(t.Context(), "q", 0, math.MaxUint64, math.MaxUint64) {
		n++
		if err == nil {
			t.Fatalf("Replay(q) yielded an event with a NULL tag")
		}
	}
	if n != 1 {
		t.Fatalf("Replay(q) yielded %d elements, want 1 error", n)
	}
}

// TestConformancePartitioned runs the suite on a journal hash-partitioned
// on persistence_id, the layout planned for very large journals: a
// duplicate is reported by a partition, and must still be a conflict.
func TestConformancePartitioned(t *testing.T) {
	t.Parallel()
	journaltest.Run(t, func(t *testing.T) journal.Journal {
		db := testdb.New(t)
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, `
			CREATE TABLE pj (LIKE journal INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
			                 PRIMARY KEY (persistence_id, sequence_nr)) PARTITION BY HASH (persistence_id);
			CREATE TABLE pj_0 PARTITION OF pj FOR VALUES WITH (MODULUS 2, REMAINDER 0);
			CREATE TABLE pj_1 PARTITION OF pj FOR VALUES WITH (MODULUS 2, REMAINDER 1);`); err != nil {
			t.Fatalf("create partitioned journal: %v", err)
		}
		return pgjournal.New(db.Pool, pgjournal.WithTable("", "pj"))
	})
}
