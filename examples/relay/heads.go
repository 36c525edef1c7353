package relay

import (
	"context"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// followHeads is follow on a journal without a feed (journal.FeedReader)
// or without reads of many streams (journal.StreamsReader): every
// Config.DiscoverEvery it lists the streams, and every pass it reads the
// head of every stream it follows (journal.HighestReader where the
// journal has it: one round trip per journal.MaxHighestBatch streams)
// and replays each stream that moved from its position, one query per
// stream. A pass costs a read per stream followed, whatever moved.
func (r *Relay) followHeads(ctx context.Context, offsets map[string]uint64, out sink) error {
	pos := map[string]uint64{} // stream → the last sequence number handed to out
	var streams []string
	var discovered time.Time
	batch := make([]journal.Event, 0, min(r.cfg.BatchSize, 1024))
	for {
		// 3. Discovery, now and then: new streams start at their offset.
		if time.Since(discovered) >= r.cfg.DiscoverEvery {
			for pid, err := range journal.AllPersistenceIDs(ctx, r.lister, journal.ListOptions{ExcludePrefix: store.PersistenceIDPrefix}) {
				if err != nil {
					return err
				}
				if _, known := pos[pid]; !known && (r.cfg.Follow == nil || r.cfg.Follow(pid)) {
					pos[pid] = offsets[pid]
					streams = append(streams, pid)
				}
			}
			discovered = time.Now()
		}

		// 4. The heads of every known stream, then the streams that moved.
		heads, err := journal.ReadHighest(ctx, r.j, streams)
		if err != nil {
			return err
		}
		moved := false
		for _, pid := range streams {
			head := heads[pid]
			if head <= pos[pid] {
				continue
			}
			batch = batch[:0]
			for ev, err := range r.j.Replay(ctx, pid, pos[pid]+1, head, uint64(r.cfg.BatchSize)) {
				if err != nil {
					return err
				}
				batch = append(batch, ev)
			}
			done := head // no live events up to the head: deleted rows
			if len(batch) > 0 {
				// 5. Publish and record the progress.
				if done, err = out.publish(ctx, pid, batch); err != nil {
					return err
				}
				if done == batch[len(batch)-1].SequenceNr && len(batch) < r.cfg.BatchSize {
					done = head // the rest of the range is deleted rows
				}
			}
			if done != pos[pid] {
				pos[pid] = done
				moved = true
			}
		}
		if err := out.err(); err != nil {
			return err
		}
		if !moved {
			r.idle.Add(1)
			if err := sleep(ctx, r.cfg.PollInterval); err != nil {
				return err
			}
		}
	}
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
