package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// recorder collects what an observer is told.
type recorder struct {
	mu     sync.Mutex
	events []store.WriteEvent
}

func (r *recorder) observe(ev store.WriteEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) last(t *testing.T) store.WriteEvent {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		t.Fatal("the observer was told nothing")
	}
	return r.events[len(r.events)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Every outcome of a write reaches the observer, with the row it sent; a
// call that writes nothing is not reported.
func TestObserverOutcomes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := journal.NewMemory()
	fj := faultjournal.New(mem)
	var r recorder
	s := open(t, fj, "seen", store.WithObserver(r.observe))

	save(t, s, map[string]uint64{"a": 1})
	ev := r.last(t)
	if ev.Outcome != store.OutcomeOK || ev.Op != "save" || ev.SequenceNr != 1 || ev.Bytes == 0 || ev.Outbox != "seen" || ev.Kind != store.RowFull || ev.Duration <= 0 || ev.Err != nil {
		t.Fatalf("ok save: %+v", ev)
	}

	n := r.count()
	save(t, s, map[string]uint64{"a": 1}) // changes nothing
	if r.count() != n {
		t.Fatalf("a save that writes nothing was reported: %+v", r.last(t))
	}

	if err := s.Save(ctx, map[string]uint64{"": 1}); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("Save of an empty key = %v", err)
	}
	if ev := r.last(t); ev.Outcome != store.OutcomeError || ev.Bytes != 0 || ev.SequenceNr != 0 {
		t.Fatalf("invalid key: %+v", ev)
	}

	// A lost acknowledgement whose read-back fails: in doubt; the next
	// save adopts it on its way.
	fj.FailAfterCommit.Store(1)
	fj.FailLast.Store(1)
	if err := s.Save(ctx, map[string]uint64{"a": 2}); !errors.Is(err, store.ErrInDoubt) {
		t.Fatalf("Save with a lost ack = %v, want ErrInDoubt", err)
	}
	if ev := r.last(t); ev.Outcome != store.OutcomeInDoubt || ev.SequenceNr != 2 {
		t.Fatalf("in doubt: %+v", ev)
	}
	save(t, s, map[string]uint64{"b": 1})
	if ev := r.last(t); ev.Outcome != store.OutcomeAdopted || ev.SequenceNr != 3 {
		t.Fatalf("adopted on the way: %+v", ev)
	}

	// Another writer takes the outbox.
	peer := open(t, mem, "seen")
	save(t, peer, map[string]uint64{"c": 1})
	if err := s.Save(ctx, map[string]uint64{"d": 1}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Save after a peer = %v", err)
	}
	if ev := r.last(t); ev.Outcome != store.OutcomeFenced {
		t.Fatalf("fenced: %+v", ev)
	}

	// SaveTx reports under its own name.
	var rt recorder
	tx := open(t, journal.NewMemory(), "tx", store.WithObserver(rt.observe))
	if err := tx.SaveTx(ctx, journal.NewMemory(), map[string]uint64{"a": 1}, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("SaveTx: %v", err)
	}
	if ev := rt.last(t); ev.Op != "save in transaction" || ev.Outcome != store.OutcomeOK {
		t.Fatalf("SaveTx: %+v", ev)
	}
}

// Info tells the newest row as loaded and as written.
func TestInfo(t *testing.T) {
	t.Parallel()
	mem := journal.NewMemory()
	s := open(t, mem, "info", store.WithWriterID("w1"))
	if info := s.Info(); info.SequenceNr != 0 || !info.WrittenAt.IsZero() || info.Keys != 0 {
		t.Fatalf("Info of a new outbox = %+v", info)
	}
	save(t, s, map[string]uint64{"a": 1, "b": 2})
	info := s.Info()
	if info.SequenceNr != 1 || info.Writer != "w1" || info.Keys != 2 || info.Kind != store.RowFull || info.Mode != store.ModeFull || info.WrittenAt.IsZero() {
		t.Fatalf("Info after a save = %+v", info)
	}
	again := open(t, mem, "info").Info()
	if again.SequenceNr != 1 || again.Writer != "w1" || again.Keys != 2 || again.WrittenAt.IsZero() {
		t.Fatalf("Info after Open = %+v", again)
	}
}

// gated holds the next AppendNext until its gate opens.
type gated struct {
	*faultjournal.Journal
	mu            sync.Mutex
	gate, entered chan struct{}
}

func (g *gated) AppendNext(ctx context.Context, ev journal.Event) error {
	g.mu.Lock()
	gate, entered := g.gate, g.entered
	g.gate = nil
	g.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return g.Journal.AppendNext(ctx, ev)
}

// A call that waited behind another call's adoption is not told it
// adopted: each call's outcome is its own.
func TestObserverAdoptionIsTheCallsOwn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fj := faultjournal.New(journal.NewMemory())
	g := &gated{Journal: fj}
	var mu sync.Mutex
	outcomes := map[string]store.Outcome{}
	s := open(t, g, "own", store.WithObserver(func(ev store.WriteEvent) {
		mu.Lock()
		defer mu.Unlock()
		outcomes[fmt.Sprintf("%s:%d", ev.Op, ev.SequenceNr)] = ev.Outcome
	}))
	save(t, s, map[string]uint64{"a": 1})
	fj.FailAfterCommit.Store(1)
	fj.FailLast.Store(1)
	if err := s.Save(ctx, map[string]uint64{"a": 2}); !errors.Is(err, store.ErrInDoubt) {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.gate, g.entered = make(chan struct{}), make(chan struct{})
	gate, entered := g.gate, g.entered
	g.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Save(ctx, map[string]uint64{"b": 1}) }) // adopts 2, writes 3
	<-entered
	wg.Go(func() { _ = s.Forget(ctx, "a") }) // waits for the semaphore, writes 4
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if outcomes["save:3"] != store.OutcomeAdopted || outcomes["forget:4"] != store.OutcomeOK {
		t.Fatalf("outcomes %v: want save:3 adopted and forget:4 ok", outcomes)
	}
}
