package journaltest

import (
	"bytes"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/journal"
)

// Factory returns a fresh, empty journal for the test t. It is an alias, so
// any func(t *testing.T) journal.Journal is a Factory.
type Factory = func(t *testing.T) journal.Journal

// Run runs the whole conformance suite against the journals newJournal
// returns, one fresh journal per subtest. Subtests run in parallel.
func Run(t *testing.T, newJournal func(t *testing.T) journal.Journal) {
	t.Helper()
	groups := []struct {
		name string
		run  func(*testing.T, Factory)
	}{
		{"Basics", RunBasics},
		{"Conflicts", RunConflicts},
		{"Validation", RunValidation},
		{"Replay", RunReplay},
		{"DeleteTo", RunDeleteTo},
		{"Isolation", RunIsolation},
		{"Context", RunContext},
		{"Concurrency", RunConcurrency},
		{"ChainFallback", RunChainFallback},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, newJournal)
		})
	}
	// Optional interfaces, checked on one journal, run where implemented.
	probe := newJournal(t)
	_, next := probe.(journal.NextAppender)
	_, succ := probe.(journal.SuccessorAppender)
	_, head := probe.(journal.HeadReader)
	_, lister := probe.(journal.StreamLister)
	_, highest := probe.(journal.HighestReader)
	_, chain := probe.(journal.ChainReader)
	_, before := probe.(journal.BeforeReader)
	_, lag := probe.(journal.LagReader)
	_, feed := probe.(journal.FeedReader)
	_, streams := probe.(journal.StreamsReader)
	_, scanner := probe.(journal.Scanner)
	optional := []struct {
		name string
		has  bool
		run  func(*testing.T, Factory)
	}{
		{"AppendNext", next, RunAppendNext},
		{"AppendSuccessor", succ, RunSuccessorAppender},
		{"Head", head, RunHead},
		{"StreamLister", lister, RunStreamLister},
		{"HighestReader", highest, RunHighestReader},
		{"ChainReader", chain, RunChainReader},
		{"BeforeReader", before, RunBeforeReader},
		{"LagReader", lag, RunLagReader},
		{"FeedReader", feed, RunFeedReader},
		{"StreamsReader", streams, RunStreamsReader},
		{"Scanner", scanner, RunScanner},
	}
	for _, g := range optional {
		if !g.has {
			continue
		}
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, newJournal)
		})
	}
}

// Collect drains seq and returns its events, stopping at the first error.
func Collect(seq iter.Seq2[journal.Event, error]) ([]journal.Event, error) {
	var events []journal.Event
	for ev, err := range seq {
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
	return events, nil
}

// subtest is one named check of a group.
type subtest struct {
	name string
	run  func(t *testing.T, j journal.Journal)
}

// runAll runs each subtest in parallel on its own fresh journal.
func runAll(t *testing.T, newJournal Factory, tests []subtest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJournal(t)
			if j == nil {
				t.Fatal("factory returned a nil journal")
			}
			tc.run(t, j)
		})
	}
}

// payloadFor is the payload evt gives (pid, seq): unique per event, so a
// read can tell which write it came from.
func payloadFor(pid string, seq uint64) []byte {
	return fmt.Appendf(nil, "%s#%d", pid, seq)
}

// evt returns a plain valid event whose payload is payloadFor(pid, seq).
func evt(pid string, seq uint64) journal.Event {
	return journal.Event{
		PersistenceID: pid,
		SequenceNr:    seq,
		Payload:       payloadFor(pid, seq),
		Manifest:      "test-manifest",
		WriterUUID:    "test-writer",
		Tags:          []string{"test"},
	}
}

// evts returns evt(pid, seq) for seq from..to.
func evts(pid string, from, to uint64) []journal.Event {
	var events []journal.Event
	for seq := from; seq <= to; seq++ {
		events = append(events, evt(pid, seq))
	}
	return events
}

// intruder returns an event for (pid, seq) whose content differs from
// evt's, to prove that a rejected write changed nothing.
func intruder(pid string, seq uint64) journal.Event {
	return journal.Event{
		PersistenceID: pid,
		SequenceNr:    seq,
		Payload:       []byte("intruder"),
		Manifest:      "intruder",
		WriterUUID:    "intruder",
	}
}

func seqRange(from, to uint64) []uint64 {
	var seqs []uint64
	for seq := from; seq <= to; seq++ {
		seqs = append(seqs, seq)
	}
	return seqs
}

func seqsOf(events []journal.Event) []uint64 {
	seqs := make([]uint64, len(events))
	for i, ev := range events {
		seqs[i] = ev.SequenceNr
	}
	return seqs
}

func mustAppend(t *testing.T, j journal.Journal, events ...journal.Event) {
	t.Helper()
	if err := j.Append(t.Context(), events...); err != nil {
		t.Fatalf("Append(%s): %v", describe(events), err)
	}
}

func mustDeleteTo(t *testing.T, j journal.Journal, pid string, to uint64) {
	t.Helper()
	if err := j.DeleteTo(t.Context(), pid, to); err != nil {
		t.Fatalf("DeleteTo(%q, %d): %v", pid, to, err)
	}
}

// describe prints a batch as (pid, seq) pairs.
func describe(events []journal.Event) string {
	var b strings.Builder
	for i, ev := range events {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 8 {
			fmt.Fprintf(&b, "… %d more", len(events)-i)
			break
		}
		fmt.Fprintf(&b, "(%q, %d)", ev.PersistenceID, ev.SequenceNr)
	}
	return b.String()
}

// replay runs Replay to the end and checks what every backend must
// guarantee of its output: no error, the requested pid, strictly ascending
// sequence numbers within the bounds, at most max events, none deleted and
// no nil payload.
func replay(t *testing.T, j journal.Journal, pid string, from, to, max uint64) []journal.Event {
	t.Helper()
	events, err := replayChecked(j.Replay(t.Context(), pid, from, to, max))
	if err != nil {
		t.Fatalf("Replay(%q, %d, %d, %d): %v", pid, from, to, max, err)
	}
	if problem := checkReplay(events, pid, from, to, max); problem != "" {
		t.Fatalf("Replay(%q, %d, %d, %d): %s", pid, from, to, max, problem)
	}
	return events
}

// replayChecked is Collect that keeps iterating after an error, to verify
// that the error is the last element.
func replayChecked(seq iter.Seq2[journal.Event, error]) ([]journal.Event, error) {
	var (
		events []journal.Event
		err    error
		after  int
	)
	for ev, e := range seq {
		switch {
		case err != nil:
			after++
		case e != nil:
			err = e
		default:
			events = append(events, ev)
		}
	}
	if after > 0 {
		return events, fmt.Errorf("%w (and then %d more elements, but an error must be the last one)", err, after)
	}
	return events, err
}

// element is one (event, error) pair yielded by Replay.
type element struct {
	ev  journal.Event
	err error
}

// drain iterates seq to its end, keeping every element.
func drain(seq iter.Seq2[journal.Event, error]) []element {
	var elems []element
	for ev, err := range seq {
		elems = append(elems, element{ev, err})
	}
	return elems
}

func checkReplay(events []journal.Event, pid string, from, to, max uint64) string {
	if uint64(len(events)) > max {
		return fmt.Sprintf("yielded %d events, more than max", len(events))
	}
	for i, ev := range events {
		switch {
		case ev.PersistenceID != pid:
			return fmt.Sprintf("event %d has persistence id %q", i, ev.PersistenceID)
		case ev.SequenceNr < from || ev.SequenceNr > to:
			return fmt.Sprintf("event %d has sequence nr %d, outside the bounds", i, ev.SequenceNr)
		case i > 0 && ev.SequenceNr <= events[i-1].SequenceNr:
			return fmt.Sprintf("not strictly ascending: %v", seqsOf(events))
		case ev.Deleted:
			return fmt.Sprintf("yielded deleted event %d", ev.SequenceNr)
		case ev.Payload == nil:
			return fmt.Sprintf("event %d has a nil payload", ev.SequenceNr)
		}
	}
	return ""
}

func wantSeqs(t *testing.T, what string, got []journal.Event, want []uint64) {
	t.Helper()
	if gotSeqs := seqsOf(got); !slices.Equal(gotSeqs, want) {
		t.Fatalf("%s: got sequence nrs %v, want %v", what, gotSeqs, want)
	}
}

func wantHighest(t *testing.T, j journal.Journal, pid string, want uint64) {
	t.Helper()
	got, err := j.HighestSequenceNr(t.Context(), pid)
	if err != nil {
		t.Fatalf("HighestSequenceNr(%q): %v", pid, err)
	}
	if got != want {
		t.Fatalf("HighestSequenceNr(%q) = %d, want %d", pid, got, want)
	}
}

// wantLast checks that Last returns the event at seq, or nothing when seq
// is 0, and returns it.
func wantLast(t *testing.T, j journal.Journal, pid string, seq uint64) journal.Event {
	t.Helper()
	ev, ok, err := j.Last(t.Context(), pid)
	if err != nil {
		t.Fatalf("Last(%q): %v", pid, err)
	}
	switch {
	case seq == 0 && ok:
		t.Fatalf("Last(%q) = event %d, want none", pid, ev.SequenceNr)
	case seq == 0:
		if ev.PersistenceID != "" || ev.SequenceNr != 0 || ev.Payload != nil {
			t.Fatalf("Last(%q) found nothing but returned a non-zero event %+v", pid, ev)
		}
	case !ok:
		t.Fatalf("Last(%q) found nothing, want event %d", pid, seq)
	case ev.PersistenceID != pid || ev.SequenceNr != seq:
		t.Fatalf("Last(%q) = (%q, %d), want (%q, %d)", pid, ev.PersistenceID, ev.SequenceNr, pid, seq)
	case ev.Deleted:
		t.Fatalf("Last(%q) returned a deleted event", pid)
	}
	return ev
}

// wantStream checks a stream written with evt: its highest sequence nr,
// the sequence nrs and payloads Replay yields, and Last.
func wantStream(t *testing.T, j journal.Journal, pid string, highest uint64, seqs []uint64) {
	t.Helper()
	wantHighest(t, j, pid, highest)
	events := replay(t, j, pid, 0, math.MaxUint64, math.MaxUint64)
	wantSeqs(t, fmt.Sprintf("Replay(%q)", pid), events, seqs)
	for _, ev := range events {
		if want := payloadFor(pid, ev.SequenceNr); !bytes.Equal(ev.Payload, want) {
			t.Fatalf("Replay(%q): event %d has payload %q, want %q", pid, ev.SequenceNr, ev.Payload, want)
		}
	}
	var last uint64
	if len(seqs) > 0 {
		last = seqs[len(seqs)-1]
	}
	wantLast(t, j, pid, last)
}

// state is what a journal holds for some pids, to prove that a rejected
// call changed nothing.
type state map[string]streamState

type streamState struct {
	highest uint64
	events  []journal.Event
	last    journal.Event
	ok      bool
}

func capture(t *testing.T, j journal.Journal, pids ...string) state {
	t.Helper()
	s := make(state, len(pids))
	for _, pid := range pids {
		var st streamState
		var err error
		if st.highest, err = j.HighestSequenceNr(t.Context(), pid); err != nil {
			t.Fatalf("HighestSequenceNr(%q): %v", pid, err)
		}
		st.events = replay(t, j, pid, 0, math.MaxUint64, math.MaxUint64)
		if st.last, st.ok, err = j.Last(t.Context(), pid); err != nil {
			t.Fatalf("Last(%q): %v", pid, err)
		}
		s[pid] = st
	}
	return s
}

// unchanged fails t if the pids of before hold anything different now.
func unchanged(t *testing.T, j journal.Journal, what string, before state) {
	t.Helper()
	pids := make([]string, 0, len(before))
	for pid := range before {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	after := capture(t, j, pids...)
	for _, pid := range pids {
		b, a := before[pid], after[pid]
		if a.highest != b.highest {
			t.Fatalf("%s changed HighestSequenceNr(%q) from %d to %d", what, pid, b.highest, a.highest)
		}
		if len(a.events) != len(b.events) {
			t.Fatalf("%s changed Replay(%q) from %v to %v", what, pid, seqsOf(b.events), seqsOf(a.events))
		}
		for i := range a.events {
			if d := diffEvent(a.events[i], b.events[i]); d != "" {
				t.Fatalf("%s changed event (%q, %d): %s", what, pid, b.events[i].SequenceNr, d)
			}
		}
		if a.ok != b.ok || (a.ok && diffEvent(a.last, b.last) != "") {
			t.Fatalf("%s changed Last(%q) from %d (found %v) to %d (found %v)", what, pid,
				b.last.SequenceNr, b.ok, a.last.SequenceNr, a.ok)
		}
	}
}

// diffEvent describes how got differs from want, field by field; "" if
// they are the same (nil and empty Tags are the same, times compare with
// Equal).
func diffEvent(got, want journal.Event) string {
	var d []string
	if got.PersistenceID != want.PersistenceID {
		d = append(d, fmt.Sprintf("PersistenceID %q, want %q", got.PersistenceID, want.PersistenceID))
	}
	if got.SequenceNr != want.SequenceNr {
		d = append(d, fmt.Sprintf("SequenceNr %d, want %d", got.SequenceNr, want.SequenceNr))
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		d = append(d, fmt.Sprintf("Payload %q, want %q", abbrev(got.Payload), abbrev(want.Payload)))
	}
	if got.Manifest != want.Manifest {
		d = append(d, fmt.Sprintf("Manifest %q, want %q", got.Manifest, want.Manifest))
	}
	if got.WriterUUID != want.WriterUUID {
		d = append(d, fmt.Sprintf("WriterUUID %q, want %q", got.WriterUUID, want.WriterUUID))
	}
	if got.Deleted != want.Deleted {
		d = append(d, fmt.Sprintf("Deleted %v, want %v", got.Deleted, want.Deleted))
	}
	if !slices.Equal(got.Tags, want.Tags) {
		d = append(d, fmt.Sprintf("Tags %q, want %q", got.Tags, want.Tags))
	}
	if !got.WrittenAt.Equal(want.WrittenAt) {
		d = append(d, fmt.Sprintf("WrittenAt %v, want %v", got.WrittenAt, want.WrittenAt))
	}
	return strings.Join(d, "; ")
}

func abbrev(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "…"...)
	}
	return b
}

// within runs f and fails t if f does not return within a generous
// deadline: a deadlock becomes a failure instead of a hung test binary. f
// runs on another goroutine and must not call t's methods.
func within(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-timer.C:
		t.Fatalf("%s did not finish within 30s: a deadlock or a leaked connection?", what)
	}
}
