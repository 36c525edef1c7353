package journal

import "context"

// Head is the head of one stream, read in one consistent step: its newest
// non-deleted event and the highest sequence number ever written.
type Head struct {
	// Last is the newest non-deleted event; meaningful only when HasLast.
	Last Event
	// HasLast is false when the stream has no live event.
	HasLast bool
	// Highest is the highest sequence number ever written, deleted rows
	// included; 0 for an unknown stream. It is at least Last.SequenceNr.
	Highest uint64
}

// HeadReader is implemented by journals that read the head of a stream in
// one round trip and one consistent view (one SQL statement), so that no
// write can fall between reading the newest event and the highest number.
type HeadReader interface {
	// Head returns the head of persistenceID. An unknown stream has the
	// zero Head.
	Head(ctx context.Context, persistenceID string) (Head, error)
}

// ReadHead returns the head of persistenceID: through j's Head when j is a
// HeadReader, and otherwise by Last, HighestSequenceNr and, when those
// disagree, Last again until two reads agree, so that a writer that
// commits between the reads is seen, never half seen.
func ReadHead(ctx context.Context, j Journal, persistenceID string) (Head, error) {
	if h, ok := j.(HeadReader); ok {
		return h.Head(ctx, persistenceID)
	}
	ev, ok, err := j.Last(ctx, persistenceID)
	for {
		if err != nil {
			return Head{}, err
		}
		hi, err := j.HighestSequenceNr(ctx, persistenceID)
		if err != nil {
			return Head{}, err
		}
		if ok && ev.SequenceNr >= hi {
			return Head{Last: ev, HasLast: true, Highest: ev.SequenceNr}, nil
		}
		// Either no live event, or newer rows than the one read: read the
		// newest again. It is the same only when nothing was written in
		// between (the rows above it are deleted ones).
		again, ok2, err := j.Last(ctx, persistenceID)
		if err != nil {
			return Head{}, err
		}
		if ok2 == ok && (!ok || again.SequenceNr == ev.SequenceNr) {
			h := Head{Highest: hi}
			if ok {
				h.Last, h.HasLast = ev, true
			}
			return h, nil
		}
		ev, ok = again, ok2
	}
}
