package relay

import (
	"context"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// followFeed is follow on a journal with a feed (journal.FeedReader) and
// reads of many streams (journal.StreamsReader). A pass:
//
//  1. reads the feed from the previous pass's cursor: the streams with
//     rows committed since, at a cost that follows those rows, not the
//     streams followed; a stream new to the relay starts at its offset;
//  2. queues each stream that moved past what the relay has seen of it;
//  3. reads the front of the queue, up to readChunk streams in one
//     ReadStreams, each from its position, and publishes each stream's
//     events in order.
//
// Before the first pass it catches up with what was committed before the
// feed's first cursor (catchUp). On a feed that may miss a commit
// (FeedExact false: pgjournal WithCitus), it also sweeps the streams'
// heads every Config.SweepEvery.
func (r *Relay) followFeed(ctx context.Context, offsets map[string]uint64, out sink) error {
	// The cursor first: whatever commits from here on, the feed reports;
	// whatever committed before, the catch-up reads.
	cursor, err := r.feed.FeedStart(ctx)
	if err != nil {
		return err
	}
	t := newTracker(offsets, r.cfg.Follow)
	if err := r.catchUp(ctx, t, len(offsets) == 0, out); err != nil {
		return err
	}
	swept := time.Now()
	opts := journal.FeedOptions{ExcludePrefix: store.PersistenceIDPrefix}
	wait := idleWait{max: r.cfg.PollInterval}
	for {
		next, err := r.feed.ReadFeed(ctx, cursor, opts, func(m journal.Moved) error {
			t.moved(m.PersistenceID, m.Highest)
			return nil
		})
		if err != nil {
			return err
		}
		cursor = next
		r.passes.Add(1)
		if !r.feed.FeedExact() && time.Since(swept) >= r.cfg.SweepEvery {
			if err := r.sweep(ctx, t); err != nil {
				return err
			}
			swept = time.Now()
		}
		published, err := r.drain(ctx, t, out)
		if err != nil {
			return err
		}
		if err := out.err(); err != nil {
			return err
		}
		if published > 0 || len(t.queue) > 0 {
			wait.reset()
			continue
		}
		r.idle.Add(1)
		if err := sleep(ctx, wait.next()); err != nil {
			return err
		}
	}
}

// idleWait is the wait after a pass that found nothing: short right after
// passes that published (events arriving steadily find the relay
// looking), doubling with each empty pass up to Config.PollInterval (an
// idle relay looks that often).
type idleWait struct {
	max, cur time.Duration
}

// minIdleWaits is how many times shorter than PollInterval the first
// wait after a busy pass is.
const minIdleWaits = 16

func (w *idleWait) reset() { w.cur = 0 }

func (w *idleWait) next() time.Duration {
	if w.cur == 0 {
		w.cur = max(w.max/minIdleWaits, time.Millisecond)
	} else {
		w.cur = min(2*w.cur, w.max)
	}
	return min(w.cur, w.max)
}

// readChunk is the most streams one ReadStreams of a pass names.
const readChunk = 1000

// readTotal is the most events one ReadStreams (or one page of a Scan)
// yields: ten batches, within what the journal allows.
func (r *Relay) readTotal() int {
	return min(10*r.cfg.BatchSize, journal.MaxReadTotal)
}

// drain reads the streams at the front of the queue, at most readChunk
// of them, with one ReadStreams, and publishes what it yields stream by
// stream. A stream read to its end leaves the queue; one that yielded a
// whole batch, that the total cut, or that the sink did not take whole,
// goes to the back. It returns the number of events published.
func (r *Relay) drain(ctx context.Context, t *tracker, out sink) (int, error) {
	if len(t.queue) == 0 {
		return 0, nil
	}
	chunk := t.queue[:min(len(t.queue), readChunk)]
	from := make([]journal.Position, len(chunk))
	for i, pid := range chunk {
		from[i] = journal.Position{PersistenceID: pid, SequenceNr: t.streams[pid].pos}
	}
	opts := journal.ReadStreamsOptions{PerStream: r.cfg.BatchSize, Total: r.readTotal()}
	events := r.buf[:0]
	for ev, err := range r.streams.ReadStreams(ctx, from, opts) {
		if err != nil {
			return 0, err
		}
		events = append(events, ev)
	}
	r.buf = events[:0]
	r.read.Add(int64(len(events)))

	// The stream the total cut, if it did: it and those after it are
	// not read to their end.
	cutAt := ""
	if len(events) == opts.Total {
		cutAt = events[len(events)-1].PersistenceID
	}
	more := map[string]bool{}
	published := 0
	for rest := events; len(rest) > 0; {
		pid := rest[0].PersistenceID
		n := 1
		for n < len(rest) && rest[n].PersistenceID == pid {
			n++
		}
		group := rest[:n]
		rest = rest[n:]
		s := t.streams[pid]
		done, err := out.publish(ctx, pid, group)
		if err != nil {
			return published, err
		}
		published += n
		s.pos = max(s.pos, done)
		if n == opts.PerStream || done < group[n-1].SequenceNr {
			more[pid] = true
		}
	}
	// In the order read: a stream that yielded less than a batch, and
	// the sink took whole, is done, unless it is the one the total cut,
	// or comes after it (not read at all).
	var again []string
	cut := false
	for _, pid := range chunk {
		if pid == cutAt {
			cut = true
			again = append(again, pid)
			continue
		}
		if cut || more[pid] {
			again = append(again, pid)
			continue
		}
		t.done(pid)
	}
	// A new array for the queue when streams go back, so the front's is
	// let go.
	t.queue = append(t.queue[len(chunk):len(t.queue):len(t.queue)], again...)
	return published, nil
}

// sweep finds what an inexact feed may have missed: it lists the streams
// (queuing those new to the relay) and reads the heads of every stream
// followed, queuing those past what the relay has seen. Its cost follows
// the number of streams; it runs every Config.SweepEvery.
func (r *Relay) sweep(ctx context.Context, t *tracker) error {
	for pid, err := range journal.AllPersistenceIDs(ctx, r.lister, journal.ListOptions{ExcludePrefix: store.PersistenceIDPrefix}) {
		if err != nil {
			return err
		}
		if _, known := t.streams[pid]; !known {
			t.moved(pid, unknownHead)
		}
	}
	pids := make([]string, 0, len(t.streams))
	for pid, s := range t.streams {
		if !s.pending {
			pids = append(pids, pid)
		}
	}
	heads, err := journal.ReadHighest(ctx, r.j, pids)
	if err != nil {
		return err
	}
	for pid, h := range heads {
		t.moved(pid, h)
	}
	r.sweeps.Add(1)
	return nil
}
