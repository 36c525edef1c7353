package faultjournal_test

import (
	"errors"
	"testing"

	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/journaltest"
)

// TestConformance: without faults, the wrapper and its plain view are
// journals like the one they wrap.
func TestConformance(t *testing.T) {
	t.Parallel()
	t.Run("Forwarding", func(t *testing.T) {
		t.Parallel()
		journaltest.Run(t, func(*testing.T) journal.Journal { return faultjournal.New(journal.NewMemory()) })
	})
	t.Run("Plain", func(t *testing.T) {
		t.Parallel()
		journaltest.Run(t, func(*testing.T) journal.Journal { return faultjournal.New(journal.NewMemory()).Plain() })
	})
}

func TestOptionalInterfaces(t *testing.T) {
	t.Parallel()
	fj := faultjournal.New(journal.NewMemory())
	if _, ok := any(fj).(journal.NextAppender); !ok {
		t.Error("the wrapper hides NextAppender")
	}
	if _, ok := any(fj).(journal.HeadReader); !ok {
		t.Error("the wrapper hides HeadReader")
	}
	if _, ok := any(fj).(journal.StreamLister); !ok {
		t.Error("the wrapper hides StreamLister")
	}
	if _, ok := any(fj).(journal.HighestReader); !ok {
		t.Error("the wrapper hides HighestReader")
	}
	if _, ok := any(fj).(journal.FeedReader); !ok {
		t.Error("the wrapper hides FeedReader")
	}
	if _, ok := any(fj).(journal.StreamsReader); !ok {
		t.Error("the wrapper hides StreamsReader")
	}
	if _, ok := any(fj).(journal.Scanner); !ok {
		t.Error("the wrapper hides Scanner")
	}
	p := fj.Plain()
	if _, ok := p.(journal.NextAppender); ok {
		t.Error("Plain exposes NextAppender")
	}
	for name, ok := range map[string]bool{
		"HeadReader":    is[journal.HeadReader](p),
		"StreamLister":  is[journal.StreamLister](p),
		"HighestReader": is[journal.HighestReader](p),
		"FeedReader":    is[journal.FeedReader](p),
		"StreamsReader": is[journal.StreamsReader](p),
		"Scanner":       is[journal.Scanner](p),
	} {
		if ok {
			t.Errorf("Plain exposes %s", name)
		}
	}
}

func is[T any](j journal.Journal) bool {
	_, ok := j.(T)
	return ok
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fj := faultjournal.New(journal.NewMemory())
	ev := func(seq uint64) journal.Event {
		return journal.Event{PersistenceID: "p", SequenceNr: seq, Payload: []byte{1}}
	}

	fj.FailBeforeCommit.Store(1)
	if err := fj.AppendNext(ctx, ev(1)); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("AppendNext = %v, want the injected fault", err)
	}
	if hi, _ := fj.Inner().HighestSequenceNr(ctx, "p"); hi != 0 {
		t.Fatalf("a failure before commit wrote up to %d", hi)
	}
	fj.FailAfterCommit.Store(1)
	if err := fj.Plain().Append(ctx, ev(1)); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("Append = %v, want the injected fault", err)
	}
	if hi, _ := fj.Inner().HighestSequenceNr(ctx, "p"); hi != 1 {
		t.Fatalf("a failure after commit did not write: highest %d", hi)
	}
	if err := fj.AppendNext(ctx, ev(2)); err != nil {
		t.Fatalf("AppendNext once the faults are used up: %v", err)
	}

	fj.FailLast.Store(2)
	if _, err := fj.Head(ctx, "p"); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("Head = %v", err)
	}
	if _, _, err := fj.Last(ctx, "p"); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("Last = %v", err)
	}
	if h, err := fj.Head(ctx, "p"); err != nil || h.Highest != 2 || !h.HasLast {
		t.Fatalf("Head = %+v, %v", h, err)
	}
	fj.FailReplay.Store(1)
	for _, err := range fj.Replay(ctx, "p", 1, 10, 10) {
		if !errors.Is(err, faultjournal.ErrInjected) {
			t.Fatalf("Replay yielded %v", err)
		}
	}
	fj.FailDeleteTo.Store(1)
	if err := fj.DeleteTo(ctx, "p", 1); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("DeleteTo = %v", err)
	}
}

// TestAppendNextNeedsIt: on a journal without AppendNext, the wrapper's
// AppendNext refuses rather than appending unconditionally.
func TestAppendNextNeedsIt(t *testing.T) {
	t.Parallel()
	bare := faultjournal.New(journal.NewMemory()).Plain()
	fj := faultjournal.New(bare)
	ctx := t.Context()
	if err := fj.AppendNext(ctx, journal.Event{PersistenceID: "p", SequenceNr: 1, Payload: []byte{1}}); err == nil {
		t.Fatal("AppendNext on a journal without it succeeded")
	}
	if hi, err := bare.HighestSequenceNr(ctx, "p"); err != nil || hi != 0 {
		t.Fatalf("the refused AppendNext wrote: highest %d, %v", hi, err)
	}
	if _, err := fj.PersistenceIDs(ctx, journal.ListOptions{}); err == nil {
		t.Fatal("PersistenceIDs on a journal without it succeeded")
	}
	// HighestSequenceNrs falls back to one read per id.
	if err := bare.Append(ctx, journal.Event{PersistenceID: "q", SequenceNr: 3, Payload: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if m, err := fj.HighestSequenceNrs(ctx, []string{"q", "p"}); err != nil || m["q"] != 3 || m["p"] != 0 || len(m) != 2 {
		t.Fatalf("HighestSequenceNrs = %v, %v", m, err)
	}
}
