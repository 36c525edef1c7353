package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/examples/relay"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// published records what a relay published, by the relay's session: 0
// before its first reopen, 1 after it, and so on.
type published struct {
	mu     sync.Mutex
	counts map[uint64]map[string]map[uint64]int // session → pid → seq → times
}

func (p *published) add(session uint64, ev journal.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.counts[session]
	if s == nil {
		s = map[string]map[uint64]int{}
		p.counts[session] = s
	}
	if s[ev.PersistenceID] == nil {
		s[ev.PersistenceID] = map[uint64]int{}
	}
	s[ev.PersistenceID][ev.SequenceNr]++
}

// session returns the events of one session, each with its count.
func (p *published) session(n uint64) map[string]map[uint64]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]map[uint64]int{}
	for pid, seqs := range p.counts[n] {
		out[pid] = maps.Clone(seqs)
	}
	return out
}

func total(m map[string]map[uint64]int) int {
	n := 0
	for _, seqs := range m {
		for _, c := range seqs {
			n += c
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRewindRunningRelay: a --to-datetime rewind applied while the
// reference relay runs. The relay is fenced by the operator's snapshot at
// its next save, reopens the outbox, and publishes again exactly the
// events above the new offsets, each once: counted per stream and
// sequence number.
//
// The relay learns of the change at its next save, so when it has nothing
// to publish it goes on unaware until an event arrives: the test appends
// one after the rewind, as the service's next event would.
func TestRewindRunningRelay(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	const streams, events = 5, 10
	pids := make([]string, streams)
	for i := range pids {
		pids[i] = fmt.Sprintf("live-%d", i+1)
		for seq := 1; seq <= events; seq++ {
			insertAt(t, db.Pool, pids[i], seq, minute(seq)) // seq n at 09:0n
		}
	}

	pub := &published{counts: map[uint64]map[string]map[uint64]int{}}
	var rel *relay.Relay
	rel, err := relay.New(relay.Config{
		Pool:   db.Pool,
		Outbox: "live",
		Publish: func(_ context.Context, ev journal.Event) error {
			pub.add(uint64(rel.Stats().Reopens), ev)
			return nil
		},
		CommitEvery:    1000,
		CommitInterval: 20 * time.Millisecond,
		PollInterval:   10 * time.Millisecond,
		DiscoverEvery:  50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rel.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()

	// Caught up and saved: every stream at its head.
	heads := map[string]uint64{}
	for _, pid := range pids {
		heads[pid] = events
	}
	f := &fixture{db: db}
	waitFor(t, "the relay publishes and saves every event", func() bool {
		m, _ := f.offsetsIfAny(t, "live")
		return maps.Equal(m, heads)
	})
	if n := total(pub.session(0)); n != streams*events {
		t.Fatalf("the relay published %d events before the rewind, want %d", n, streams*events)
	}

	// Rewind every key to what was written before 09:05:30: 5 of each
	// stream's 10 events are to be published again.
	out := mustRun(t, f.args("rewind", "live", "--all-keys", "--to-datetime", "2026-12-01T09:05:30Z", "--apply")...)
	if want := fmt.Sprintf("back: %d keys by %d events in all", streams, streams*5); !strings.Contains(out, want) {
		t.Fatalf("rewind output lacks %q:\n%s", want, out)
	}

	// The service's next event: the relay publishes it, saves, is fenced
	// by the operator's snapshot, reopens and loads the rewind.
	if err := pgjournal.New(db.Pool).Append(ctx, journal.Event{PersistenceID: pids[0], SequenceNr: events + 1, Payload: []byte("next")}); err != nil {
		t.Fatal(err)
	}
	heads[pids[0]] = events + 1
	want := map[string]map[uint64]int{}
	for _, pid := range pids {
		want[pid] = map[uint64]int{}
		for seq := uint64(6); seq <= heads[pid]; seq++ {
			want[pid][seq] = 1
		}
	}
	waitFor(t, "the relay reopens and publishes the rewound events again", func() bool {
		return rel.Stats().Reopens >= 1 && total(pub.session(1)) >= total(want)
	})
	waitFor(t, "the relay saves its offsets at the heads again", func() bool {
		m, _ := f.offsetsIfAny(t, "live")
		return maps.Equal(m, heads)
	})
	// Some idle passes more: nothing else comes.
	idle := rel.Stats().IdlePasses
	waitFor(t, "idle passes after the catch-up", func() bool { return rel.Stats().IdlePasses >= idle+5 })

	st := rel.Stats()
	if st.Reopens != 1 || st.Fenced != 0 {
		t.Fatalf("relay stats %+v: want one reopen after the operator's change, no fencing by another relay", st)
	}
	got := pub.session(1)
	if !equalCounts(got, want) {
		t.Fatalf("after the rewind the relay published %v (%d events), want each event above the new offsets once: %v (%d)",
			got, total(got), want, total(want))
	}
	if n := pub.session(0)[pids[0]][events+1]; n != 1 {
		t.Fatalf("the new event was published %d times before the reopen, want 1", n)
	}
	t.Logf("published again after the rewind: %d events (%d rewound + 1 new); before it: %d", total(got), streams*5, total(pub.session(0)))
}

func equalCounts(a, b map[string]map[uint64]int) bool {
	if len(a) != len(b) {
		return false
	}
	for pid, seqs := range a {
		if !maps.Equal(seqs, b[pid]) {
			return false
		}
	}
	return true
}

// offsetsIfAny is offsets without failing when the outbox has no
// snapshot yet (the relay has not saved).
func (f *fixture) offsetsIfAny(t *testing.T, outbox string) (map[string]uint64, error) {
	t.Helper()
	s, err := store.Open(t.Context(), pgjournal.New(f.db.Pool), outbox)
	if err != nil {
		return nil, err
	}
	return s.Load(t.Context())
}
