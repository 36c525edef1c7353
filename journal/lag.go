package journal

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Position is a reader's position in one stream: the last sequence number
// it has handled (0: none yet).
type Position struct {
	PersistenceID string
	SequenceNr    uint64
}

// StreamLag compares a Position with its stream.
type StreamLag struct {
	// PersistenceID and Offset are the Position given.
	PersistenceID string
	Offset        uint64
	// Highest is the stream's highest sequence number, deleted rows
	// included (as HighestSequenceNr); 0 for an unknown stream.
	Highest uint64
	// NextWrittenAt is the WrittenAt of the stream's first live event
	// above Offset (the one Replay from Offset+1 yields first): the oldest
	// event the reader has yet to handle. Zero when there is none: Highest
	// <= Offset, or every row above Offset is deleted (DeleteTo keeps a
	// deleted highest row, which counts in Highest but waits for no one).
	NextWrittenAt time.Time
}

// Lag is Highest − Offset, negative when the offset is past the stream's
// end, saturated to the int64 range.
func (l StreamLag) Lag() int64 {
	if l.Highest >= l.Offset {
		return int64(min(l.Highest-l.Offset, math.MaxInt64))
	}
	return -int64(min(l.Offset-l.Highest, math.MaxInt64))
}

// LagReader is implemented by journals that compare many positions with
// their streams in few round trips: the read an exporter of a relay's lag
// makes at every poll.
type LagReader interface {
	// StreamLags returns a StreamLag for every given position whose
	// stream's highest sequence number is not its SequenceNr (the stream is
	// ahead of the position, or behind it), in no particular order, and
	// nothing for the positions at their stream's head: a reader that
	// keeps up costs no rows.
	//
	// A backend bounds the positions of one round trip and splits a larger
	// call into several (pgjournal: MaxLagBatch per statement); the parts
	// are then separate reads. Every persistence id must pass
	// ValidatePersistenceID and appear once; otherwise the call fails with
	// ErrInvalidArgument before any I/O. No positions give no StreamLag and
	// no I/O.
	StreamLags(ctx context.Context, positions []Position) ([]StreamLag, error)
}

// ValidatePositions checks positions as LagReader.StreamLags requires:
// each persistence id valid and given once. The error matches
// ErrInvalidArgument.
func ValidatePositions(positions []Position) error {
	seen := make(map[string]struct{}, len(positions))
	for i, p := range positions {
		if err := ValidatePersistenceID(p.PersistenceID); err != nil {
			return err
		}
		if _, dup := seen[p.PersistenceID]; dup {
			return &InvalidArgumentError{Field: fmt.Sprintf("position %d", i), Reason: fmt.Sprintf("repeats persistence id %q", p.PersistenceID)}
		}
		seen[p.PersistenceID] = struct{}{}
	}
	return nil
}

// ReadStreamLags returns what LagReader.StreamLags returns: through j's
// StreamLags when j is a LagReader, and otherwise with one
// HighestSequenceNr per position (HighestSequenceNrs when j is a
// HighestReader) and one Replay of one event per stream behind its
// position, so that any Journal can be monitored, in more round trips.
func ReadStreamLags(ctx context.Context, j Journal, positions []Position) ([]StreamLag, error) {
	if l, ok := j.(LagReader); ok {
		return l.StreamLags(ctx, positions)
	}
	if err := ValidatePositions(positions); err != nil {
		return nil, err
	}
	pids := make([]string, len(positions))
	for i, p := range positions {
		pids[i] = p.PersistenceID
	}
	highest, err := ReadHighest(ctx, j, pids)
	if err != nil {
		return nil, err
	}
	var out []StreamLag
	for _, p := range positions {
		l := StreamLag{PersistenceID: p.PersistenceID, Offset: p.SequenceNr, Highest: highest[p.PersistenceID]}
		if l.Highest == l.Offset {
			continue
		}
		if l.Highest > l.Offset {
			at, err := firstWrittenAbove(ctx, j, p)
			if err != nil {
				return nil, err
			}
			l.NextWrittenAt = at
		}
		out = append(out, l)
	}
	return out, nil
}

// firstWrittenAbove is the WrittenAt of the first live event above p, read
// with Replay; zero when there is none.
func firstWrittenAbove(ctx context.Context, j Journal, p Position) (time.Time, error) {
	for ev, err := range j.Replay(ctx, p.PersistenceID, p.SequenceNr+1, math.MaxUint64, 1) {
		if err != nil {
			return time.Time{}, err
		}
		return ev.WrittenAt, nil
	}
	return time.Time{}, nil
}
