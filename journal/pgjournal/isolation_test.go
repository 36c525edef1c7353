package pgjournal_test

import (
	"errors"
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// ev is event seq of the stream "rr".
func ev(seq uint64) journal.Event {
	return journal.Event{PersistenceID: "rr", SequenceNr: seq, Payload: []byte{byte(seq)}, Manifest: "m", WriterUUID: "w"}
}

// TestAppendNextRepeatableReadDefault runs AppendNext where every
// transaction is REPEATABLE READ by default. On the pool it writes in a
// READ COMMITTED transaction of its own and returns nil; on a connection,
// which may be inside a BEGIN of the caller's, it appends and returns
// journal.ErrUnverified; a stale event is refused on both.
func TestAppendNextRepeatableReadDefault(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.New(t)
	pool := db.NewPool(t, testdb.DefaultIsolation("repeatable read"))
	onPool := pgjournal.New(pool)
	if err := onPool.AppendNext(ctx, ev(1)); err != nil {
		t.Fatalf("AppendNext on a REPEATABLE READ pool = %v, want nil", err)
	}
	if err := onPool.AppendNext(ctx, ev(1)); !errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("stale AppendNext on the pool = %v, want a conflict", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	onConn := pgjournal.New(conn.Conn())
	if err := onConn.AppendNext(ctx, ev(2)); !errors.Is(err, journal.ErrUnverified) {
		t.Fatalf("AppendNext on a REPEATABLE READ connection = %v, want journal.ErrUnverified", err)
	}
	if err := onConn.AppendNext(ctx, ev(2)); !errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("stale AppendNext on the connection = %v, want a conflict", err)
	}
	if h, err := pgjournal.New(db.Pool).HighestSequenceNr(ctx, "rr"); err != nil || h != 2 {
		t.Fatalf("highest = %d, %v; want 2 (both appends committed)", h, err)
	}
}

// TestAppendNextRepeatableReadDefaultOnCitus is the same pool on the
// Citus cluster, WithCitus: there the check runs on the worker, in a
// transaction Citus began at the coordinator's level, and its lock
// statement on the coordinator reports that level. An append under it
// commits and returns journal.ErrUnverified, on the pool too, so that the
// caller reads the head after it; a stale event is still refused.
func TestAppendNextRepeatableReadDefaultOnCitus(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.NewCitus(t)
	pool := db.NewPool(t, testdb.DefaultIsolation("repeatable read"))
	j := pgjournal.New(pool, pgjournal.WithTable(db.Table()), pgjournal.WithCitus())
	if err := j.AppendNext(ctx, ev(1)); !errors.Is(err, journal.ErrUnverified) {
		t.Fatalf("AppendNext on a REPEATABLE READ pool of the cluster = %v, want journal.ErrUnverified", err)
	}
	if err := j.AppendNext(ctx, ev(1)); !errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("stale AppendNext = %v, want a conflict", err)
	}
	rc := pgjournal.New(db.Pool, pgjournal.WithTable(db.Table()), pgjournal.WithCitus())
	if err := rc.AppendNext(ctx, ev(2)); err != nil {
		t.Fatalf("AppendNext at READ COMMITTED on the cluster = %v, want nil", err)
	}
	if h, err := rc.HighestSequenceNr(ctx, "rr"); err != nil || h != 2 {
		t.Fatalf("highest = %d, %v; want 2 (both appends committed)", h, err)
	}
}
