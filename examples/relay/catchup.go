package relay

import (
	"context"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// catchUp reads what was committed before the feed's first cursor. A
// fresh outbox (no offsets) on a journal that scans (journal.Scanner)
// reads the whole journal in key order, page by page, at the speed of
// one streaming SELECT, publishing each stream's events in order. An
// outbox with offsets lists the streams instead (one index probe each)
// and queues them all: passes then read each from its offset, so a
// restart costs a probe per stream rather than a read of every event
// already published.
func (r *Relay) catchUp(ctx context.Context, t *tracker, fresh bool, out sink) error {
	if sc, ok := r.j.(journal.Scanner); ok && fresh {
		return r.scan(ctx, sc, t, out)
	}
	for pid, err := range journal.AllPersistenceIDs(ctx, r.lister, journal.ListOptions{ExcludePrefix: store.PersistenceIDPrefix}) {
		if err != nil {
			return err
		}
		t.moved(pid, unknownHead)
	}
	return nil
}

// scan publishes every event of the journal, page by page in key order,
// each stream's events in batches of at most Config.BatchSize. The next
// page is read while the current one is published (readPages), so that
// the server's reading and the relay's publishing overlap.
func (r *Relay) scan(ctx context.Context, sc journal.Scanner, t *tracker, out sink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages, free := r.readPages(ctx, sc)
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		r.read.Add(int64(len(p.events)))
		for rest := p.events; len(rest) > 0; {
			pid := rest[0].PersistenceID
			n := 1
			for n < len(rest) && n < r.cfg.BatchSize && rest[n].PersistenceID == pid {
				n++
			}
			group := rest[:n]
			rest = rest[n:]
			s := t.get(pid)
			if s == nil || s.pending || group[n-1].SequenceNr <= s.pos {
				continue // not followed, or left to the passes (below)
			}
			done, err := out.publish(ctx, pid, group)
			if err != nil {
				return err
			}
			s.pos, s.seen = max(s.pos, done), max(s.seen, done)
			if done < group[n-1].SequenceNr {
				// The sink took part of it (PublishTx found an earlier
				// transaction committed): the passes read the rest of
				// the stream from its position; the scan skips it.
				t.moved(pid, unknownHead)
			}
		}
		clear(p.events) // let the payloads go
		free <- p.events[:0]
	}
	return nil
}

// page is one page of a scan, or the error that ended it.
type page struct {
	events []journal.Event
	err    error
}

// readPages reads the journal's pages in key order on a goroutine of its
// own, one page ahead of the caller, until the last page, an error (sent
// as the last page) or the end of ctx. The caller gives each page's slice
// back on free once done with it; the two slices go round.
func (r *Relay) readPages(ctx context.Context, sc journal.Scanner) (<-chan page, chan<- []journal.Event) {
	pages := make(chan page, 1)
	free := make(chan []journal.Event, 2)
	limit := r.readTotal()
	free <- make([]journal.Event, 0, limit)
	free <- make([]journal.Event, 0, limit)
	go func() {
		defer close(pages)
		opts := journal.ScanOptions{Limit: limit, ExcludePrefix: store.PersistenceIDPrefix}
		for {
			var events []journal.Event
			select {
			case events = <-free:
			case <-ctx.Done():
				return
			}
			var err error
			for ev, e := range sc.Scan(ctx, opts) {
				if e != nil {
					err = e
					break
				}
				events = append(events, ev)
			}
			select {
			case pages <- page{events: events, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(events) < limit {
				return
			}
			last := events[len(events)-1]
			opts.After = journal.Position{PersistenceID: last.PersistenceID, SequenceNr: last.SequenceNr}
		}
	}()
	return pages, free
}
