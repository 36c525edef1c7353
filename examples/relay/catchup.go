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
// each stream's events in batches of at most Config.BatchSize.
func (r *Relay) scan(ctx context.Context, sc journal.Scanner, t *tracker, out sink) error {
	opts := journal.ScanOptions{Limit: r.readTotal(), ExcludePrefix: store.PersistenceIDPrefix}
	for {
		events := r.buf[:0]
		for ev, err := range sc.Scan(ctx, opts) {
			if err != nil {
				return err
			}
			events = append(events, ev)
		}
		r.buf = events[:0]
		r.read.Add(int64(len(events)))
		if len(events) == 0 {
			return nil
		}
		last := events[len(events)-1]
		for rest := events; len(rest) > 0; {
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
		if len(events) < opts.Limit {
			return nil
		}
		opts.After = journal.Position{PersistenceID: last.PersistenceID, SequenceNr: last.SequenceNr}
	}
}
