// Package faultjournal is a journal.Journal for tests that wraps another
// and makes chosen calls fail: an append that writes nothing, an append
// that commits and then reports an error (a lost acknowledgement), a
// failing replay, prune or read of the newest event.
//
// The wrapper forwards the optional interfaces of the journal it wraps
// (journal.NextAppender, journal.SuccessorAppender, journal.HeadReader,
// journal.ChainReader, journal.StreamLister, journal.HighestReader,
// journal.FeedReader, journal.StreamsReader, journal.Scanner,
// journal.ReplicatedReader, journal.ReplicationReporter), so that a store
// or a relay on it takes the path it takes on the bare journal.
// Plain gives the other path explicitly: a journal with the
// journal.Journal methods only, as a backend without those interfaces is.
//
//	fj := faultjournal.New(pgjournal.New(pool))
//	s, _ := store.Open(ctx, fj, "orders")         // AppendNext, Head: as in production
//	p, _ := store.Open(ctx, fj.Plain(), "orders") // plain Append, Last + HighestSequenceNr
//	fj.FailAfterCommit.Store(1)                   // the next append commits, then fails
package faultjournal

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/outboxkit/offsetstore/journal"
)

// ErrInjected is matched by every error the wrapper makes up.
var ErrInjected = errors.New("faultjournal: injected fault")

// Journal wraps a journal and injects faults. Each counter, while
// positive, makes that many calls fail, one per call; they may be set at
// any time, also while other goroutines call the journal.
type Journal struct {
	// FailBeforeCommit makes Append and AppendNext fail without writing.
	FailBeforeCommit atomic.Int32
	// FailAfterCommit makes Append and AppendNext write, then fail, as a
	// connection cut after COMMIT looks to the client.
	FailAfterCommit atomic.Int32
	// FailReplay makes Replay yield an error and nothing else.
	FailReplay atomic.Int32
	// FailDeleteTo makes DeleteTo fail without deleting.
	FailDeleteTo atomic.Int32
	// FailLast makes Last, Head and ReadChain, the reads of the newest
	// events, fail.
	FailLast atomic.Int32

	inner journal.Journal
	// faults is the Journal whose counters apply, for a view of f bound
	// to another journal (ReadReplicated); nil: f's own.
	faults *Journal
}

var (
	_ journal.Journal           = (*Journal)(nil)
	_ journal.NextAppender      = (*Journal)(nil)
	_ journal.SuccessorAppender = (*Journal)(nil)
	_ journal.HeadReader        = (*Journal)(nil)
	_ journal.StreamLister      = (*Journal)(nil)
	_ journal.HighestReader     = (*Journal)(nil)
	_ journal.ChainReader       = (*Journal)(nil)
	_ journal.FeedReader        = (*Journal)(nil)
	_ journal.StreamsReader     = (*Journal)(nil)
	_ journal.Scanner           = (*Journal)(nil)

	_ journal.ReplicatedReader    = (*Journal)(nil)
	_ journal.ReplicationReporter = (*Journal)(nil)
)

// c returns the Journal whose counters apply to f.
func (f *Journal) c() *Journal {
	if f.faults != nil {
		return f.faults
	}
	return f
}

// New wraps inner. inner must implement journal.NextAppender for
// AppendNext and journal.StreamLister for PersistenceIDs to work; use
// Plain for one that does not.
func New(inner journal.Journal) *Journal { return &Journal{inner: inner} }

// Inner returns the wrapped journal, without faults.
func (f *Journal) Inner() journal.Journal { return f.inner }

// Plain returns f with the journal.Journal methods only, faults included:
// a store on it appends with plain Append and reads the head with Last and
// HighestSequenceNr, as on a backend without the optional interfaces.
func (f *Journal) Plain() journal.Journal { return plain{f} }

// plain hides the optional interfaces of Journal.
type plain struct{ f *Journal }

func (p plain) Append(ctx context.Context, events ...journal.Event) error {
	return p.f.Append(ctx, events...)
}

func (p plain) Replay(ctx context.Context, pid string, from, to, max uint64) iter.Seq2[journal.Event, error] {
	return p.f.Replay(ctx, pid, from, to, max)
}

func (p plain) HighestSequenceNr(ctx context.Context, pid string) (uint64, error) {
	return p.f.HighestSequenceNr(ctx, pid)
}

func (p plain) DeleteTo(ctx context.Context, pid string, to uint64) error {
	return p.f.DeleteTo(ctx, pid, to)
}

func (p plain) Last(ctx context.Context, pid string) (journal.Event, bool, error) {
	return p.f.Last(ctx, pid)
}

// take uses up one failure of c, if any is left.
func take(c *atomic.Int32) bool {
	for {
		n := c.Load()
		if n <= 0 {
			return false
		}
		if c.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// write runs an append with the append faults around it.
func (f *Journal) write(do func() error) error {
	if take(&f.c().FailBeforeCommit) {
		return fmt.Errorf("append: connection refused: %w", ErrInjected)
	}
	if err := do(); err != nil {
		return err
	}
	if take(&f.c().FailAfterCommit) {
		return fmt.Errorf("append: connection reset after commit: %w", ErrInjected)
	}
	return nil
}

// Append implements journal.Journal.
func (f *Journal) Append(ctx context.Context, events ...journal.Event) error {
	return f.write(func() error { return f.inner.Append(ctx, events...) })
}

// AppendNext implements journal.NextAppender by the wrapped journal's
// AppendNext. It fails, writing nothing, when the wrapped journal has none.
func (f *Journal) AppendNext(ctx context.Context, ev journal.Event) error {
	na, ok := f.inner.(journal.NextAppender)
	if !ok {
		return fmt.Errorf("faultjournal: %T has no AppendNext: use Plain", f.inner)
	}
	return f.write(func() error { return na.AppendNext(ctx, ev) })
}

// AppendSuccessor implements journal.SuccessorAppender by the wrapped
// journal's AppendSuccessor, with the append faults. It fails, writing
// nothing, when the wrapped journal has none.
func (f *Journal) AppendSuccessor(ctx context.Context, ev journal.Event) error {
	sa, ok := f.inner.(journal.SuccessorAppender)
	if !ok {
		return fmt.Errorf("faultjournal: %T has no AppendSuccessor: use Plain", f.inner)
	}
	return f.write(func() error { return sa.AppendSuccessor(ctx, ev) })
}

// Replay implements journal.Journal.
func (f *Journal) Replay(ctx context.Context, pid string, from, to, max uint64) iter.Seq2[journal.Event, error] {
	if take(&f.c().FailReplay) {
		return func(yield func(journal.Event, error) bool) { yield(journal.Event{}, ErrInjected) }
	}
	return f.inner.Replay(ctx, pid, from, to, max)
}

// HighestSequenceNr implements journal.Journal.
func (f *Journal) HighestSequenceNr(ctx context.Context, pid string) (uint64, error) {
	return f.inner.HighestSequenceNr(ctx, pid)
}

// DeleteTo implements journal.Journal.
func (f *Journal) DeleteTo(ctx context.Context, pid string, to uint64) error {
	if take(&f.c().FailDeleteTo) {
		return fmt.Errorf("delete: %w", ErrInjected)
	}
	return f.inner.DeleteTo(ctx, pid, to)
}

// Last implements journal.Journal.
func (f *Journal) Last(ctx context.Context, pid string) (journal.Event, bool, error) {
	if take(&f.c().FailLast) {
		return journal.Event{}, false, ErrInjected
	}
	return f.inner.Last(ctx, pid)
}

// Head implements journal.HeadReader: by the wrapped journal's Head, or by
// journal.ReadHead on it when it has none.
func (f *Journal) Head(ctx context.Context, pid string) (journal.Head, error) {
	if take(&f.c().FailLast) {
		return journal.Head{}, ErrInjected
	}
	return journal.ReadHead(ctx, f.inner, pid)
}

// ReadChain implements journal.ChainReader: by the wrapped journal's, or
// by journal.ReadChain on it when it has none. FailLast makes it fail.
func (f *Journal) ReadChain(ctx context.Context, pid, base string) (journal.Chain, error) {
	if take(&f.c().FailLast) {
		return journal.Chain{}, ErrInjected
	}
	return journal.ReadChain(ctx, f.inner, pid, base)
}

// ReadReplicated implements journal.ReplicatedReader by the wrapped
// journal's, with read given that journal's bound one wrapped with f's
// faults; when the wrapped journal has none, read runs on f and nothing is
// confirmed, as on a journal without it.
func (f *Journal) ReadReplicated(ctx context.Context, read func(j journal.Journal) (bool, error)) error {
	rr, ok := f.inner.(journal.ReplicatedReader)
	if !ok {
		_, err := read(f)
		return err
	}
	return rr.ReadReplicated(ctx, func(j journal.Journal) (bool, error) {
		return read(&Journal{inner: j, faults: f.c()})
	})
}

// Replicated implements journal.ReplicationReporter by the wrapped
// journal's; nil when it has none.
func (f *Journal) Replicated() error {
	if rr, ok := f.inner.(journal.ReplicationReporter); ok {
		return rr.Replicated()
	}
	return nil
}

// PersistenceIDs implements journal.StreamLister by the wrapped journal's.
// It fails when the wrapped journal has none.
func (f *Journal) PersistenceIDs(ctx context.Context, opts journal.ListOptions) ([]string, error) {
	l, ok := f.inner.(journal.StreamLister)
	if !ok {
		return nil, fmt.Errorf("faultjournal: %T has no PersistenceIDs: use Plain", f.inner)
	}
	return l.PersistenceIDs(ctx, opts)
}

// HighestSequenceNrs implements journal.HighestReader: by the wrapped
// journal's, or by one HighestSequenceNr per id when it has none.
func (f *Journal) HighestSequenceNrs(ctx context.Context, persistenceIDs []string) (map[string]uint64, error) {
	return journal.ReadHighest(ctx, f.inner, persistenceIDs)
}

// FeedStart implements journal.FeedReader by the wrapped journal's. It
// fails when the wrapped journal has none.
func (f *Journal) FeedStart(ctx context.Context) (journal.FeedCursor, error) {
	fr, ok := f.inner.(journal.FeedReader)
	if !ok {
		return "", fmt.Errorf("faultjournal: %T has no feed: use Plain", f.inner)
	}
	return fr.FeedStart(ctx)
}

// ReadFeed implements journal.FeedReader by the wrapped journal's. It
// fails when the wrapped journal has none.
func (f *Journal) ReadFeed(ctx context.Context, since journal.FeedCursor, opts journal.FeedOptions, fn func(journal.Moved) error) (journal.FeedCursor, error) {
	fr, ok := f.inner.(journal.FeedReader)
	if !ok {
		return since, fmt.Errorf("faultjournal: %T has no feed: use Plain", f.inner)
	}
	return fr.ReadFeed(ctx, since, opts, fn)
}

// FeedExact implements journal.FeedReader by the wrapped journal's; false
// when it has none.
func (f *Journal) FeedExact() bool {
	fr, ok := f.inner.(journal.FeedReader)
	return ok && fr.FeedExact()
}

// ReadStreams implements journal.StreamsReader: by the wrapped journal's,
// or by one Replay per stream when it has none. FailReplay makes it yield
// an error and nothing else.
func (f *Journal) ReadStreams(ctx context.Context, from []journal.Position, opts journal.ReadStreamsOptions) iter.Seq2[journal.Event, error] {
	if take(&f.FailReplay) {
		return func(yield func(journal.Event, error) bool) { yield(journal.Event{}, ErrInjected) }
	}
	if r, ok := f.inner.(journal.StreamsReader); ok {
		return r.ReadStreams(ctx, from, opts)
	}
	return func(yield func(journal.Event, error) bool) {
		opts, err := journal.ValidateReadStreams(from, opts)
		if err != nil {
			yield(journal.Event{}, err)
			return
		}
		left := opts.Total
		for _, p := range from {
			if p.SequenceNr >= journal.MaxSequenceNr {
				continue
			}
			for ev, err := range f.inner.Replay(ctx, p.PersistenceID, p.SequenceNr+1, journal.MaxSequenceNr, uint64(opts.PerStream)) {
				if !yield(ev, err) || err != nil {
					return
				}
				if left--; left == 0 {
					return
				}
			}
		}
	}
}

// Scan implements journal.Scanner by the wrapped journal's. FailReplay
// makes it yield an error and nothing else; so does a wrapped journal
// without one.
func (f *Journal) Scan(ctx context.Context, opts journal.ScanOptions) iter.Seq2[journal.Event, error] {
	s, ok := f.inner.(journal.Scanner)
	if take(&f.FailReplay) || !ok {
		err := error(ErrInjected)
		if !ok {
			err = fmt.Errorf("faultjournal: %T has no Scan: use Plain", f.inner)
		}
		return func(yield func(journal.Event, error) bool) { yield(journal.Event{}, err) }
	}
	return s.Scan(ctx, opts)
}
