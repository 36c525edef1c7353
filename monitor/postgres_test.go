package monitor_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/monitor"
	"github.com/outboxkit/offsetstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// t0 is the time the tests' events are written at.
var t0 = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

// fixture is a fresh journal on PostgreSQL and a clock the test sets.
type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	j    *pgjournal.Journal
	mu   sync.Mutex
	now  time.Time
}

func setup(t *testing.T) *fixture {
	t.Helper()
	db := testdb.New(t)
	return &fixture{t: t, pool: db.Pool, j: pgjournal.New(db.Pool), now: t0}
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) set(now time.Time) {
	f.mu.Lock()
	f.now = now
	f.mu.Unlock()
}

// events inserts events from..to of pid, event n written at at(n).
func (f *fixture) events(pid string, from, to uint64, at func(n uint64) time.Time) {
	f.t.Helper()
	for n := from; n <= to; n++ {
		if _, err := f.pool.Exec(f.t.Context(), `INSERT INTO journal (persistence_id, sequence_nr, payload, written_at) VALUES ($1, $2, '\x00', $3)`, pid, int64(n), at(n)); err != nil {
			f.t.Fatal(err)
		}
	}
}

// save saves offsets into outbox as a relay does and sets the row's
// written_at to at (zero: leave the server's).
func (f *fixture) save(s *store.Store, offsets map[string]uint64, at time.Time) {
	f.t.Helper()
	if err := s.Save(f.t.Context(), offsets); err != nil {
		f.t.Fatal(err)
	}
	f.stamp(s, at)
}

func (f *fixture) stamp(s *store.Store, at time.Time) {
	f.t.Helper()
	if at.IsZero() {
		return
	}
	if _, err := f.pool.Exec(f.t.Context(), `UPDATE journal SET written_at = $1 WHERE persistence_id = $2 AND sequence_nr = $3`, at, s.PersistenceID(), int64(s.SequenceNr())); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) open(outbox string) *store.Store {
	f.t.Helper()
	s, err := store.Open(f.t.Context(), f.j, outbox)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) monitor(opts ...monitor.Option) *monitor.Monitor {
	f.t.Helper()
	m, err := monitor.New(f.j, append([]monitor.Option{monitor.WithClock(f.clock), monitor.WithRules(monitor.Rules{Window: 3, StopAfter: 2 * time.Minute})}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func poll(t *testing.T, m *monitor.Monitor) map[string]monitor.Report {
	t.Helper()
	reports, err := m.Poll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]monitor.Report{}
	for _, r := range reports {
		out[r.Outbox] = r
	}
	return out
}

func minutes(n uint64) func(uint64) time.Time {
	return func(k uint64) time.Time { return t0.Add(time.Duration(n+k) * time.Minute) }
}

// A relay killed with events waiting: exact lag, lag time and snapshot
// age from known written_at values, and STOP; the unseen stream counts
// by default and not with UnseenIgnore.
func TestKilledRelayIsStop(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.events("order-a", 1, 10, minutes(0))  // event n at t0+n min
	f.events("order-b", 1, 5, minutes(0))   // at its offset
	f.events("order-c", 1, 3, minutes(100)) // ahead of nothing: at its offset
	f.events("order-d", 1, 2, minutes(20))  // no key yet: unseen
	s := f.open("orders")
	f.save(s, map[string]uint64{"order-a": 4, "order-b": 5, "order-c": 3}, t0.Add(30*time.Minute))
	f.set(t0.Add(time.Hour))

	for _, tc := range []struct {
		name     string
		opt      monitor.Unseen
		lag      uint64
		lagTime  time.Duration
		unseen   int
		topKeys  []string
		stopping bool
	}{
		// order-a waits since event 5 (t0+5m), order-d since event 1 (t0+21m).
		{"count", monitor.UnseenCount, 6 + 2, 55 * time.Minute, 1, []string{"order-a", "order-d"}, true},
		{"ignore", monitor.UnseenIgnore, 6, 55 * time.Minute, 0, []string{"order-a"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := poll(t, f.monitor(monitor.WithUnseen(tc.opt)))["orders"]
			if r.Lag != tc.lag || r.LagMax != 6 || r.LagTime != tc.lagTime || r.Unseen != tc.unseen {
				t.Fatalf("lag %d, max %d, time %v, unseen %d; want %d, 6, %v, %d", r.Lag, r.LagMax, r.LagTime, r.Unseen, tc.lag, tc.lagTime, tc.unseen)
			}
			if r.SnapshotAge != 30*time.Minute || r.Keys != 3 || r.SequenceNr != 1 || r.Mode != store.ModeFull {
				t.Fatalf("snapshot age %v, keys %d, seq %d, mode %v; want 30m, 3, 1, full", r.SnapshotAge, r.Keys, r.SequenceNr, r.Mode)
			}
			var keys []string
			for _, k := range r.Top {
				keys = append(keys, k.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tc.topKeys, ",") || r.Top[0].Lag != 6 || !r.Top[0].WrittenAt.Equal(t0.Add(5*time.Minute)) {
				t.Fatalf("top %+v, want %v with order-a first (lag 6, waiting since t0+5m)", r.Top, tc.topKeys)
			}
			if r.Status != monitor.StatusStop {
				t.Fatalf("status %s (%s), want STOP", r.Status, r.Reason)
			}
		})
	}

	// The same outbox 90 s after its last save: events wait for 55 min,
	// but the relay saved within the threshold, so it is not STOP.
	f.set(t0.Add(31*time.Minute + 30*time.Second))
	if r := poll(t, f.monitor())["orders"]; r.Status != monitor.StatusOK {
		t.Fatalf("status %s (%s) 90 s after a save, want OK", r.Status, r.Reason)
	}
}

// A quiet outbox: nothing waits, its snapshot a day old: OK, lag 0.
func TestQuietOutboxIsOK(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.events("order-a", 1, 3, minutes(0))
	s := f.open("quiet")
	f.save(s, map[string]uint64{"order-a": 3}, t0.Add(5*time.Minute))
	m := f.monitor()
	for i := range 4 {
		f.set(t0.Add(24*time.Hour + time.Duration(i)*time.Minute))
		r := poll(t, m)["quiet"]
		if r.Status != monitor.StatusOK || r.Lag != 0 || r.LagTime != 0 || r.SnapshotAge < 23*time.Hour {
			t.Fatalf("poll %d: %s (%s), lag %d, lag time %v, snapshot age %v; want OK, 0, 0, a day", i, r.Status, r.Reason, r.Lag, r.LagTime, r.SnapshotAge)
		}
	}
}

// A relay slower than its producer: each poll 3 events arrive and the
// relay publishes 1; after a window of polls the lag grew at each: WARN.
func TestSlowRelayIsWarn(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := f.open("slow")
	m := f.monitor()
	var produced, published uint64
	var last monitor.Report
	for i := range 3 {
		now := t0.Add(time.Duration(i) * 15 * time.Second)
		f.set(now)
		f.events("order-a", produced+1, produced+3, func(uint64) time.Time { return now.Add(-time.Second) })
		produced += 3
		published++
		f.save(s, map[string]uint64{"order-a": published}, now.Add(-500*time.Millisecond))
		last = poll(t, m)["slow"]
		if want := produced - published; last.Lag != want {
			t.Fatalf("poll %d: lag %d, want %d", i, last.Lag, want)
		}
		if i < 2 && last.Status != monitor.StatusOK {
			t.Fatalf("poll %d: %s before the window is full, want OK", i, last.Status)
		}
	}
	if last.Status != monitor.StatusWarn || len(last.Window) != 3 {
		t.Fatalf("status %s (%s) with %d points, want WARN over 3", last.Status, last.Reason, len(last.Window))
	}
}

// An operator's rewind: REWIND for a window of polls, then OK again.
func TestRewindIsRewind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.events("order-a", 1, 10, minutes(0))
	relay := f.open("rw")
	f.save(relay, map[string]uint64{"order-a": 10}, t0)
	m := f.monitor()
	f.set(t0.Add(time.Minute))
	if r := poll(t, m)["rw"]; r.Status != monitor.StatusOK {
		t.Fatalf("before the rewind: %s (%s)", r.Status, r.Reason)
	}
	op, err := store.Open(t.Context(), f.j, "rw", store.WithWriterID(store.OperatorWriterID("test")))
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Rewind(t.Context(), map[string]uint64{"order-a": 7}); err != nil {
		t.Fatal(err)
	}
	f.stamp(op, t0.Add(90*time.Second))
	f.set(t0.Add(2 * time.Minute))
	r := poll(t, m)["rw"]
	if r.Status != monitor.StatusRewind || r.Rewound != 1 || r.Lag != 3 {
		t.Fatalf("after the rewind: %s (%s), rewound %d, lag %d; want REWIND, 1, 3", r.Status, r.Reason, r.Rewound, r.Lag)
	}
	// The relay republishes; the rewind leaves the window after 3 polls.
	relay2 := f.open("rw")
	f.save(relay2, map[string]uint64{"order-a": 10}, t0.Add(150*time.Second))
	for i := range 3 {
		f.set(t0.Add(3*time.Minute + time.Duration(i)*time.Second))
		r = poll(t, m)["rw"]
	}
	if r.Status != monitor.StatusOK {
		t.Fatalf("3 polls after the rewind: %s (%s), want OK", r.Status, r.Reason)
	}
}

// A corrupt snapshot is ERR; an outbox named but absent is NOTFOUND.
func TestCorruptIsErrAndMissingIsNotFound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.events("order-a", 1, 2, minutes(0))
	s := f.open("bad")
	f.save(s, map[string]uint64{"order-a": 2}, time.Time{})
	garbage := journal.Event{PersistenceID: s.PersistenceID(), SequenceNr: 2, Payload: []byte{1, 2, 3}, Manifest: codec.Manifest}
	if err := f.j.Append(t.Context(), garbage); err != nil {
		t.Fatal(err)
	}
	f.set(time.Now())
	got := poll(t, f.monitor(monitor.WithOutboxes("bad", "nope")))
	if r := got["bad"]; r.Status != monitor.StatusErr || !strings.Contains(r.Reason, "corrupt") {
		t.Fatalf("corrupt snapshot: %s (%q), want ERR naming the corruption", r.Status, r.Reason)
	}
	if r := got["nope"]; r.Status != monitor.StatusNotFound {
		t.Fatalf("absent outbox: %s (%q), want NOTFOUND", r.Status, r.Reason)
	}
	// Every outbox of the journal: the corrupt one is listed too.
	all := poll(t, f.monitor())
	if len(all) != 1 || all["bad"].Status != monitor.StatusErr {
		t.Fatalf("every outbox: %v, want bad alone, ERR", all)
	}
}

// Unseen streams are found a page per poll: with pages of 2 ids, a
// journal of 5 source streams is covered within 3 polls.
func TestUnseenFoundByPages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, pid := range []string{"s1", "s2", "s3", "s4", "s5"} {
		f.events(pid, 1, 1, minutes(0))
	}
	s := f.open("paged")
	f.save(s, map[string]uint64{"s1": 1}, t0)
	m := f.monitor(monitor.WithDiscoveryPage(2))
	var r monitor.Report
	for range 4 {
		r = poll(t, m)["paged"]
	}
	if r.Unseen != 4 || r.Lag != 4 {
		t.Fatalf("after 4 polls of pages of 2: unseen %d, lag %d; want 4 and 4", r.Unseen, r.Lag)
	}
	// The relay catches up: the streams become keys and leave the unseen.
	f.save(s, map[string]uint64{"s2": 1, "s3": 1, "s4": 1, "s5": 1}, t0)
	if r = poll(t, m)["paged"]; r.Unseen != 0 || r.Lag != 0 || r.Keys != 5 {
		t.Fatalf("caught up: unseen %d, lag %d, keys %d; want 0, 0, 5", r.Unseen, r.Lag, r.Keys)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	j := journal.NewMemory()
	for _, opts := range [][]monitor.Option{
		{monitor.WithRules(monitor.Rules{Window: 1})},
		{monitor.WithRules(monitor.Rules{StopAfter: -time.Second})},
		{monitor.WithDiscoveryPage(-1)},
		{monitor.WithTop(-1)},
		{monitor.WithOutboxes("")},
		{monitor.WithClock(nil)},
	} {
		if _, err := monitor.New(j, opts...); err == nil {
			t.Fatalf("New(%d options) accepted an invalid option", len(opts))
		}
	}
	if _, err := monitor.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
	if _, err := monitor.ParseUnseen("sometimes"); err == nil {
		t.Fatal("ParseUnseen accepted sometimes")
	}
	m, err := monitor.New(j)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Run(ctx, time.Second, nil); err != nil {
		t.Fatalf("Run with an ended context = %v, want nil", err)
	}
}

// Outboxes that each follow their own streams do not count each other's:
// a stream no outbox has a key for counts for the outbox whose keys are
// nearest to it.
func TestUnseenGoToTheNearestOutbox(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, pid := range []string{"order-1", "order-2", "order-3", "invoice-1", "invoice-2"} {
		f.events(pid, 1, 2, minutes(0))
	}
	f.save(f.open("orders"), map[string]uint64{"order-1": 2}, t0)
	f.save(f.open("invoices"), map[string]uint64{"invoice-1": 2, "invoice-2": 1}, t0)
	got := poll(t, f.monitor())
	if r := got["orders"]; r.Unseen != 2 || r.Lag != 4 {
		t.Fatalf("orders: unseen %d, lag %d; want order-2 and order-3 (2 and 4)", r.Unseen, r.Lag)
	}
	if r := got["invoices"]; r.Unseen != 0 || r.Lag != 1 {
		t.Fatalf("invoices: unseen %d, lag %d; want 0 and 1 (its own key behind)", r.Unseen, r.Lag)
	}
}

// A monitor of one named outbox still knows the others' keys: their
// streams are not unseen for it.
func TestNamedOutboxIgnoresOthersStreams(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, pid := range []string{"order-1", "invoice-1", "invoice-2"} {
		f.events(pid, 1, 2, minutes(0))
	}
	f.save(f.open("orders"), map[string]uint64{"order-1": 2}, t0)
	f.save(f.open("invoices"), map[string]uint64{"invoice-1": 2, "invoice-2": 2}, t0)
	got := poll(t, f.monitor(monitor.WithOutboxes("orders")))
	if r, ok := got["orders"]; len(got) != 1 || !ok || r.Unseen != 0 || r.Lag != 0 {
		t.Fatalf("reports %v: want orders alone, nothing unseen, lag 0", got)
	}
}
