package relay

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// sink is where follow hands the events of one stream, in order.
type sink interface {
	// publish delivers events (consecutive events of one stream) and
	// records the progress. It returns the sequence number the stream is
	// done to, as far as the relay will read it again.
	publish(ctx context.Context, pid string, events []journal.Event) (done uint64, err error)
	// err returns an error that happened in the background (a failed
	// ack, a fenced committer), or nil.
	err() error
}

// follow publishes the streams' new events until ctx ends or an error:
// by the feed (feed.go) on a journal that has one and reads many streams
// at once, and otherwise by reading every stream's head each pass
// (heads.go).
func (r *Relay) follow(ctx context.Context, st *store.Store, out sink) error {
	offsets, err := st.Load(ctx)
	if err != nil {
		return err
	}
	if r.feed != nil && r.streams != nil {
		return r.followFeed(ctx, offsets, out)
	}
	return r.followHeads(ctx, offsets, out)
}

// syncSink publishes with Config.Publish and marks each event done.
type syncSink struct {
	r *Relay
	c *store.Committer
	w *window
}

func (s *syncSink) publish(ctx context.Context, pid string, events []journal.Event) (uint64, error) {
	var done uint64
	for _, ev := range events {
		// Back-pressure: wait while too much is unsaved.
		if err := s.w.admit(ctx); err != nil {
			return done, err
		}
		// The lease before every call: once it is lost (ctx ended), no
		// call begins, whether or not Publish watches its ctx.
		if err := ctx.Err(); err != nil {
			return done, err
		}
		if err := s.r.cfg.Publish(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return done, ctx.Err()
			}
			return done, &PublishError{PersistenceID: pid, SequenceNr: ev.SequenceNr, Err: err}
		}
		s.r.published.Add(1)
		// Mark is cheap and never waits: the committer saves in the
		// background. It fails only once the committer has stopped
		// (ErrFenced, for example).
		if err := s.c.Mark(pid, ev.SequenceNr); err != nil {
			return done, err
		}
		s.w.done()
		done = ev.SequenceNr
	}
	return done, nil
}

func (s *syncSink) err() error {
	if err := fencedOnly(s.c.Err()); err != nil {
		return err
	}
	return s.w.check()
}

// fencedOnly keeps ErrFenced, which stops the committer; other errors of
// Committer.Err are retried by the committer and surface from Mark if they
// stop it.
func fencedOnly(err error) error {
	if errors.Is(err, store.ErrFenced) {
		return err
	}
	return nil
}

// asyncSink publishes with Config.PublishAsync: Track before publishing,
// Mark on the ack. slots bounds the events in flight.
type asyncSink struct {
	r     *Relay
	c     *store.Committer
	w     *window
	slots chan struct{}

	mu   sync.Mutex
	fail error // the first failed ack or Mark
}

func (s *asyncSink) publish(ctx context.Context, pid string, events []journal.Event) (uint64, error) {
	var done uint64
	for _, ev := range events {
		if err := s.failed(); err != nil {
			return done, err
		}
		// Back-pressure: wait while too much is unsaved.
		if err := s.w.admit(ctx); err != nil {
			return done, err
		}
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return done, ctx.Err()
		}
		// Track first: until its ack, no save of pid reaches this event,
		// whatever order the acks come in.
		if err := s.c.Track(pid, ev.SequenceNr); err != nil {
			<-s.slots
			return done, err
		}
		// The lease right before the call: select picks at random among
		// ready cases, so a free slot may have won over an ended ctx. The
		// event tracked above is not published: it holds its stream's
		// offset below it, as an event in flight does.
		if err := ctx.Err(); err != nil {
			<-s.slots
			return done, err
		}
		seq := ev.SequenceNr
		var once sync.Once
		s.r.cfg.PublishAsync(ctx, ev, func(err error) {
			once.Do(func() { s.ack(pid, seq, err) })
		})
		done = seq
	}
	return done, nil
}

func (s *asyncSink) ack(pid string, seq uint64, err error) {
	defer func() { <-s.slots }()
	if err != nil {
		s.setFail(&PublishError{PersistenceID: pid, SequenceNr: seq, Err: err})
		return
	}
	s.r.published.Add(1)
	if err := s.c.Mark(pid, seq); err != nil {
		if !errors.Is(err, store.ErrClosed) {
			s.setFail(err)
		}
		return
	}
	s.w.done() // before the slot is given back: drain counts on it
	// An ack after Close (its wait timed out) is not saved: the event is
	// published again by the next leader, as at-least-once allows.
}

func (s *asyncSink) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		s.fail = err
	}
}

func (s *asyncSink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

func (s *asyncSink) err() error {
	if err := s.failed(); err != nil {
		return err
	}
	if err := fencedOnly(s.c.Err()); err != nil {
		return err
	}
	return s.w.check()
}

// drain returns once every ack in flight has come (nil), or ctx ends
// (its error), or an ack failed (that failure): it takes every slot and
// gives them back.
func (s *asyncSink) drain(ctx context.Context) error {
	taken := 0
	defer func() {
		for range taken {
			<-s.slots
		}
	}()
	for range cap(s.slots) {
		select {
		case s.slots <- struct{}{}:
			taken++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.failed()
}

// wait returns once every ack in flight has come, or ctx ends: it takes
// every slot (acks give theirs back).
func (s *asyncSink) wait(ctx context.Context) {
	for range cap(s.slots) {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// txSink writes each batch with Config.PublishTx and saves the stream's
// offset in the same transaction (store.Store.SaveTx).
type txSink struct {
	r      *Relay
	st     *store.Store
	bounds pgjournal.TxBounds // of every transaction (see txBounds)
	retry  txRetry
}

func (s *txSink) publish(ctx context.Context, pid string, events []journal.Event) (uint64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	return s.retry.run(ctx, func() (uint64, error) { return s.publishOnce(ctx, pid, events) })
}

// publishOnce runs the batch's transaction, and again if its commit was
// in doubt.
func (s *txSink) publishOnce(ctx context.Context, pid string, events []journal.Event) (uint64, error) {
	last := events[len(events)-1].SequenceNr
	err := s.commit(ctx, pid, events, last)
	if errors.Is(err, store.ErrInDoubt) && ctx.Err() == nil {
		// The commit's outcome is unknown (its reply was lost with the
		// connection): run the transaction again, once. If the first one
		// committed, SaveTx finds it and returns ErrRetryTx before this
		// one commits; otherwise this one publishes the batch. (Nothing
		// else writes this store meanwhile, so Load cannot cover the batch
		// already; checked all the same, as ErrInDoubt asks.)
		offsets, lerr := s.st.Load(ctx)
		if lerr != nil {
			return 0, lerr
		}
		if offsets[pid] >= last {
			return offsets[pid], nil
		}
		err = s.commit(ctx, pid, events, last)
	}
	switch {
	case err == nil:
		s.r.published.Add(int64(len(events)))
		s.r.saves.Add(1)
		return last, nil
	case errors.Is(err, store.ErrRetryTx):
		// An earlier transaction of this store, whose commit was in
		// doubt, did commit. Nothing was written now: go on from the
		// offset the store holds.
		offsets, lerr := s.st.Load(ctx)
		if lerr != nil {
			return 0, lerr
		}
		return offsets[pid], nil
	}
	return 0, err // ErrFenced included: the transaction was rolled back
}

func (s *txSink) commit(ctx context.Context, pid string, events []journal.Event, last uint64) error {
	tx, err := pgjournal.BeginBounded(ctx, s.r.cfg.Pool, pgx.TxOptions{}, s.bounds)
	if err != nil {
		return err
	}
	// A no-op once committed; otherwise the sink's rows go with it.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The lease before the call: Begin may have succeeded as it was lost.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.r.cfg.PublishTx(ctx, tx, events); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &PublishError{PersistenceID: pid, SequenceNr: events[0].SequenceNr, Err: err}
	}
	return s.st.SaveTx(ctx, pgjournal.New(tx, s.r.cfg.JournalOptions...), map[string]uint64{pid: last}, tx.Commit)
}

func (s *txSink) err() error { return nil }
