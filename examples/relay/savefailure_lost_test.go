package relay_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// MaxSaveFailure bounds Run also when the saves fail with an error that
// says the server went away (here SQLSTATE 25006, as a server made
// read-only answers): once no save has succeeded for MaxSaveFailure, Run
// returns ErrSaveFailing. Leading again (what Run does when a leadership
// ends with the server lost) would start the bound anew each time and
// keep the relay publishing nothing for up to 30 times longer.
func TestSaveFailureBoundsServerLost(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	appendEvents(t, pgjournal.New(db.Pool), map[string]uint64{}, streams("ro", 5), 1, 50)
	refuseOffsetsWith(t, db, "read_only_sql_transaction", "test: cannot execute INSERT in a read-only transaction")
	const (
		maxFailure = time.Second
		closeAfter = 200 * time.Millisecond
	)
	rec := newRecorder()
	began := time.Now()
	r := start(t, relay.Config{Pool: db.Pool, Outbox: "ro", Publish: rec.publish, CommitEvery: 10,
		CommitInterval: 50 * time.Millisecond, MaxUnsaved: 20, MaxSaveFailure: maxFailure, CloseTimeout: closeAfter})
	var runErr error
	select {
	case runErr = <-r.done:
		r.done <- runErr
	case <-time.After(maxFailure + closeAfter + 8*time.Second):
		t.Fatalf("Run still runs %v after the start (%d leaderships); want it to return ErrSaveFailing after MaxSaveFailure (%v)",
			time.Since(began), r.Stats().Leaderships, maxFailure)
	}
	var pgErr *pgconn.PgError
	if !errors.Is(runErr, relay.ErrSaveFailing) || !errors.As(runErr, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("Run = %v; want ErrSaveFailing with the saves' error (25006)", runErr)
	}
	if n := r.Stats().Leaderships; n != 1 {
		t.Fatalf("%d leaderships; want 1", n)
	}
	t.Logf("Run returned after %v: %v", time.Since(began).Round(time.Millisecond), runErr)
}
