package pgjournal_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/journaltest"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// serializable makes every transaction of a pool SERIALIZABLE, as a
// server with default_transaction_isolation = serializable does.
func serializable(cfg *pgxpool.Config) {
	testdb.DefaultIsolation("serializable")(cfg)
	cfg.MaxConns = 3
}

// The whole contract holds when SERIALIZABLE is the default isolation.
func TestConformanceSerializable(t *testing.T) {
	t.Parallel()
	journaltest.Run(t, func(t *testing.T) journal.Journal {
		return pgjournal.New(testdb.New(t).NewPool(t, serializable))
	})
}

// Under SERIALIZABLE, the loser of a race for one sequence number may get
// a serialization failure instead of a unique violation. Either way the
// error says what happened: a conflict, or a rollback that wrote nothing;
// never an unexplained failure.
func TestSerializableRaceLoser(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	pool := db.NewPool(t, func(cfg *pgxpool.Config) {
		testdb.DefaultIsolation("serializable")(cfg)
		cfg.MaxConns = 8
	})
	ctx := t.Context()
	const rounds = 200
	var conflicts, rolledBack int
	for r := range rounds {
		pid := "race-" + strings.Repeat("x", r%7) + string(rune('a'+r%26)) + time.Now().Format("150405.000000")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Go(func() {
				// A transaction that reads the stream first, as a writer
				// that checks before it writes does: this is what makes
				// SERIALIZABLE report the loser as a serialization failure.
				errs[w] = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					tj := pgjournal.New(tx)
					if _, err := tj.HighestSequenceNr(ctx, pid); err != nil {
						return err
					}
					return tj.Append(ctx, journal.Event{PersistenceID: pid, SequenceNr: 1, Payload: []byte{byte(w)}})
				})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, journal.ErrSequenceConflict):
				conflicts++
			case errors.Is(err, journal.ErrRolledBack):
				rolledBack++
			default:
				// A serialization failure raised at COMMIT comes from the
				// caller's own commit, not from the journal.
				if !strings.Contains(err.Error(), "40001") {
					t.Fatalf("round %d: loser's error %q is neither a conflict nor a rollback", r, err)
				}
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d writers succeeded (errors %v), want exactly 1", r, ok, errs)
		}
	}
	t.Logf("%d races under SERIALIZABLE: %d conflicts, %d rolled back", rounds, conflicts, rolledBack)
	if rolledBack == 0 && conflicts == 0 {
		t.Fatalf("no race was lost in %d rounds: the test did not race", rounds)
	}
}

// A unique index other than the (persistence_id, sequence_nr) key is not
// a sequence conflict: its violation is a plain error naming the
// constraint, so that a writer is never fenced by it.
func TestOtherUniqueIndexIsNotAConflict(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	// An ordering column whose sequence is behind the rows already there,
	// as after a restore.
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE journal ADD COLUMN ordering bigserial UNIQUE`); err != nil {
		t.Fatal(err)
	}
	j := pgjournal.New(db.Pool)
	if err := j.Append(ctx, journal.Event{PersistenceID: "a", SequenceNr: 1}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `SELECT setval(pg_get_serial_sequence('journal', 'ordering'), 1, false)`); err != nil {
		t.Fatal(err)
	}
	for name, append := range map[string]func() error{
		"Append":     func() error { return j.Append(ctx, journal.Event{PersistenceID: "b", SequenceNr: 1}) },
		"AppendNext": func() error { return j.AppendNext(ctx, journal.Event{PersistenceID: "c", SequenceNr: 1}) },
		"AppendBatch": func() error {
			return j.Append(ctx, journal.Event{PersistenceID: "d", SequenceNr: 1}, journal.Event{PersistenceID: "d", SequenceNr: 2})
		},
	} {
		if _, err := db.Pool.Exec(ctx, `SELECT setval(pg_get_serial_sequence('journal', 'ordering'), 1, false)`); err != nil {
			t.Fatal(err)
		}
		err := append()
		if err == nil {
			t.Fatalf("%s: no error, want the ordering index's unique violation", name)
		}
		if errors.Is(err, journal.ErrSequenceConflict) {
			t.Fatalf("%s: %q matches ErrSequenceConflict; it is another index's violation", name, err)
		}
		if !strings.Contains(err.Error(), "journal_ordering_key") {
			t.Fatalf("%s: %q does not name the constraint", name, err)
		}
	}
	// The real key still conflicts.
	if err := j.Append(ctx, journal.Event{PersistenceID: "a", SequenceNr: 1}); !errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("duplicate key: %v, want ErrSequenceConflict", err)
	}
}

// A writer whose AppendNext stalls after its statement began must not land
// a row under rows that another writer committed and pruned meanwhile: the
// per-stream lock makes the second writer wait, so exactly one of them
// wins the sequence number, whatever the default isolation level.
func TestAppendNextStalledWriter(t *testing.T) {
	t.Parallel()
	for _, iso := range []string{"read committed", "repeatable read", "serializable"} {
		t.Run(strings.ReplaceAll(iso, " ", "-"), func(t *testing.T) {
			t.Parallel()
			testStalledWriter(t, iso)
		})
	}
}

func testStalledWriter(t *testing.T, isolation string) {
	db := testdb.New(t)
	ctx := t.Context()
	if _, err := db.Pool.Exec(ctx, `
CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.writer_uuid = 'stale' THEN PERFORM pg_sleep(1.5); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER stall BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION stall();`); err != nil {
		t.Fatal(err)
	}
	j := pgjournal.New(db.NewPool(t, testdb.DefaultIsolation(isolation)))
	const pid = "outbox::stall::offsets"
	staleErr := make(chan error, 1)
	go func() {
		staleErr <- j.AppendNext(ctx, journal.Event{PersistenceID: pid, SequenceNr: 1, WriterUUID: "stale"})
	}()
	time.Sleep(300 * time.Millisecond) // the stale insert is in its trigger
	// The winner writes three snapshots and prunes below the newest.
	var winnerErr error
	for seq := uint64(1); seq <= 3 && winnerErr == nil; seq++ {
		winnerErr = j.AppendNext(ctx, journal.Event{PersistenceID: pid, SequenceNr: seq, WriterUUID: "winner"})
	}
	if winnerErr == nil {
		if err := j.DeleteTo(ctx, pid, 2); err != nil {
			t.Fatal(err)
		}
	}
	stale := <-staleErr
	if stale == nil && winnerErr == nil {
		var rows []string
		r, _ := db.Pool.Query(ctx, `SELECT sequence_nr || ':' || writer_uuid FROM journal WHERE persistence_id = $1 ORDER BY 1`, pid)
		for r.Next() {
			var s string
			_ = r.Scan(&s)
			rows = append(rows, s)
		}
		t.Fatalf("both writers succeeded at sequence nr 1; rows %v: the stale write landed under the winner's", rows)
	}
	if stale != nil && winnerErr != nil {
		t.Fatalf("both writers failed: stale %v, winner %v", stale, winnerErr)
	}
	// Whoever lost was told so: a conflict, or (SERIALIZABLE) a rollback
	// that wrote nothing.
	for who, err := range map[string]error{"stale": stale, "winner": winnerErr} {
		if err != nil && !errors.Is(err, journal.ErrSequenceConflict) && !errors.Is(err, journal.ErrRolledBack) {
			t.Fatalf("%s: %v, want ErrSequenceConflict or ErrRolledBack", who, err)
		}
	}
}

func TestNewNilHandle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var nilPool *pgxpool.Pool
	for name, j := range map[string]*pgjournal.Journal{"nil": pgjournal.New(nil), "nil pool": pgjournal.New(nilPool)} {
		if err := j.Append(ctx, journal.Event{PersistenceID: "a", SequenceNr: 1}); !errors.Is(err, journal.ErrInvalidArgument) {
			t.Fatalf("%s: Append = %v, want ErrInvalidArgument", name, err)
		}
		if _, _, err := j.Last(ctx, "a"); !errors.Is(err, journal.ErrInvalidArgument) || !strings.Contains(err.Error(), "nil") {
			t.Fatalf("%s: Last = %v, want ErrInvalidArgument naming the nil handle", name, err)
		}
		if _, err := j.Head(ctx, "a"); !errors.Is(err, journal.ErrInvalidArgument) {
			t.Fatalf("%s: Head = %v, want ErrInvalidArgument", name, err)
		}
	}
}

// A persistence id longer than the index can hold is refused before any
// I/O with a clear error, not with the server's SQLSTATE 54000.
func TestLongPersistenceID(t *testing.T) {
	t.Parallel()
	j := pgjournal.New(testdb.New(t).Pool)
	long := strings.Repeat("p", 10000)
	err := j.Append(t.Context(), journal.Event{PersistenceID: long, SequenceNr: 1})
	if !errors.Is(err, journal.ErrInvalidArgument) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("Append of a 10 000-byte persistence id = %v, want ErrInvalidArgument naming the limit", err)
	}
	at := strings.Repeat("p", journal.MaxPersistenceIDLen)
	if err := j.Append(t.Context(), journal.Event{PersistenceID: at, SequenceNr: 1, Payload: make([]byte, 100)}); err != nil {
		t.Fatalf("Append of a persistence id at the limit: %v", err)
	}
}

func TestValidateTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		schema, table string
		ok            bool
	}{
		{"", "", true}, {"public", "journal", true}, {"", "Journal", true},
		{"", strings.Repeat("t", 64), false}, {"s\x00", "t", false}, {"", "\xff", false},
	} {
		err := pgjournal.ValidateTable(tc.schema, tc.table)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, journal.ErrInvalidArgument)) {
			t.Fatalf("ValidateTable(%q, %q) = %v, want ok=%v", tc.schema, tc.table, err, tc.ok)
		}
	}
}
