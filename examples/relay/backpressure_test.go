package relay_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// logs is a slog.Handler that keeps every record, for the tests to read.
type logs struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// find returns the first record at level whose message contains msg, and
// its attributes as text.
func (l *logs) find(level slog.Level, msg string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.Level == level && strings.Contains(r.Message, msg) {
			var b strings.Builder
			r.Attrs(func(a slog.Attr) bool {
				b.WriteString(a.String() + " ")
				return true
			})
			return b.String(), true
		}
	}
	return "", false
}

// refuseOffsets makes every insert into the journal of an outbox's offsets
// (persistence ids outbox::…) fail with SQLSTATE 53100 (disk full), which
// the committer retries: a save that can never succeed. The source streams
// are not affected.
func refuseOffsets(t *testing.T, db *testdb.DB) {
	t.Helper()
	refuseOffsetsWith(t, db, "disk_full", "test: no space left for the offsets")
}

// refuseOffsetsWith makes every insert of an outbox's offsets fail with
// the condition named code (a PL/pgSQL condition name) and message.
func refuseOffsetsWith(t *testing.T, db *testdb.DB, code, message string) {
	t.Helper()
	_, err := db.Pool.Exec(t.Context(), `
CREATE FUNCTION refuse_offsets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF starts_with(NEW.persistence_id, 'outbox::') THEN
    RAISE EXCEPTION '`+message+`' USING ERRCODE = '`+code+`';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_offsets BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION refuse_offsets();`)
	if err != nil {
		t.Fatal(err)
	}
}

// When every save of the offsets fails with an error the committer
// retries, publishing stops once MaxUnsaved events are unsaved, the error
// is logged and counted in Stats, and Run returns an error matching
// ErrSaveFailing once no save has succeeded for MaxSaveFailure.
func TestSaveFailureStopsPublishing(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			appendEvents(t, pgjournal.New(db.Pool), map[string]uint64{}, streams("full", 10), 1, 100)
			refuseOffsets(t, db)
			const (
				maxUnsaved  = 50
				maxInFlight = 10
				maxFailure  = 2 * time.Second
				closeAfter  = 300 * time.Millisecond
			)
			handler := &logs{}
			rec := newRecorder()
			cfg := relay.Config{Pool: db.Pool, Outbox: "full", CommitEvery: 10, CommitInterval: 50 * time.Millisecond,
				BatchSize: 20, MaxUnsaved: maxUnsaved, MaxInFlight: maxInFlight, MaxSaveFailure: maxFailure,
				CloseTimeout: closeAfter, Logger: slog.New(handler)}
			bound := int64(maxUnsaved)
			var calls atomic.Int64 // publish calls begun
			if mode == "sync" {
				cfg.Publish = func(ctx context.Context, ev journal.Event) error {
					calls.Add(1)
					return rec.publish(ctx, ev)
				}
			} else {
				cfg.PublishAsync = func(_ context.Context, ev journal.Event, ack func(error)) {
					calls.Add(1)
					go func() { rec.add(ev); ack(nil) }()
				}
				bound += maxInFlight // the acks in flight when the window filled up
			}
			began := time.Now()
			r := start(t, cfg)

			// A pause begins before the call it holds back: no call begins
			// once it is seen. (Stats.Published counts acks, and with
			// PublishAsync those in flight still come in while the pause
			// waits for them.)
			eventually(t, "publishing pauses", func() bool { return r.Stats().Paused > 0 })
			paused := calls.Load()
			time.Sleep(maxFailure / 4)
			if n := calls.Load(); n != paused || n > bound {
				t.Fatalf("%d publish calls at the pause, %d later; want no more, and at most %d", paused, n, bound)
			}

			var err error
			select {
			case err = <-r.done:
				r.done <- err
			case <-time.After(maxFailure + closeAfter + 10*time.Second):
				t.Fatalf("Run still runs %v after the start (published %d); want it to return after MaxSaveFailure (%v)", time.Since(began), r.Stats().Published, maxFailure)
			}
			took := time.Since(began)
			st := r.Stats()
			t.Logf("Run returned after %v: %v; stats %+v", took, err, st)
			var sfe *relay.SaveFailureError
			var pgErr *pgconn.PgError
			switch {
			case !errors.Is(err, relay.ErrSaveFailing) || !errors.As(err, &sfe):
				t.Fatalf("Run = %v; want a *SaveFailureError matching ErrSaveFailing", err)
			case !errors.As(sfe.Err, &pgErr) || pgErr.Code != "53100":
				t.Errorf("SaveFailureError.Err = %v; want the save's error (SQLSTATE 53100)", sfe.Err)
			case sfe.Unsaved != st.Published || sfe.Outbox != "full":
				t.Errorf("SaveFailureError %+v; want outbox full and %d unsaved", sfe, st.Published)
			}
			if took < maxFailure {
				t.Errorf("Run returned after %v, before MaxSaveFailure (%v)", took, maxFailure)
			}
			if st.Published > bound || st.Unsaved != st.Published || st.SaveErrors == 0 || st.LastSaveError == nil || st.Saves != 0 {
				t.Errorf("stats %+v; want at most %d published, all unsaved, save errors counted, the last one kept, no save", st, bound)
			}
			if attrs, ok := handler.find(slog.LevelWarn, "saving the offsets fails"); !ok || !strings.Contains(attrs, "53100") {
				t.Errorf("no warning with the save's error logged (%q)", attrs)
			}
			if _, ok := handler.find(slog.LevelWarn, "publishing paused"); !ok {
				t.Errorf("no warning that publishing paused")
			}
		})
	}
}

// A pause lasts only as long as the saves fail: once the offsets can be
// saved again, the relay publishes the rest, nothing twice, nothing lost,
// and says so in its log and stats.
func TestSaveFailureRecovers(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	want := map[string]uint64{}
	appendEvents(t, pgjournal.New(db.Pool), want, streams("back", 5), 1, 60)
	refuseOffsets(t, db)
	handler := &logs{}
	rec := newRecorder()
	r := start(t, relay.Config{Pool: db.Pool, Outbox: "back", Publish: rec.publish, CommitEvery: 10,
		CommitInterval: 50 * time.Millisecond, MaxUnsaved: 40, MaxSaveFailure: time.Minute, Logger: slog.New(handler)})

	eventually(t, "publishing pauses", func() bool { return r.Stats().Paused > 0 })
	time.Sleep(200 * time.Millisecond)
	if st := r.Stats(); st.Published != 40 || st.LastSaveError == nil {
		t.Fatalf("stats %+v while saves fail; want 40 published and the save's error", st)
	}
	if _, err := db.Pool.Exec(t.Context(), `DROP TRIGGER refuse_offsets ON journal`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every event published", func() bool { return rec.complete(want) })
	eventually(t, "everything saved", func() bool { return r.Stats().Unsaved == 0 })
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	st := r.Stats()
	republished, lost := rec.tally(want)
	t.Logf("stats %+v; re-published %d, lost %d", st, republished, lost)
	if republished != 0 || lost != 0 || st.LastSaveError != nil || st.SaveErrors == 0 || st.Leaderships != 1 {
		t.Fatalf("re-published %d, lost %d, stats %+v; want 0, 0, the error cleared, one leadership", republished, lost, st)
	}
	if got := savedOffsets(t, db.Pool, "back"); got["back-04"] != 60 {
		t.Fatalf("saved offset %d, want 60", got["back-04"])
	}
	if _, ok := handler.find(slog.LevelInfo, "saving the offsets works again"); !ok {
		t.Errorf("no record that the saves work again")
	}
}
