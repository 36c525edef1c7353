package journal

import (
	"context"
	"fmt"
	"iter"
)

// DefaultReadPerStream is ReadStreamsOptions.PerStream when 0.
const DefaultReadPerStream = 1000

// DefaultReadTotal is ReadStreamsOptions.Total when 0.
const DefaultReadTotal = 10_000

// MaxReadTotal is the largest ReadStreamsOptions.Total (and PerStream): a
// reader holds what one call yields, so it is bounded.
const MaxReadTotal = 1_000_000

// ReadStreamsOptions bound a ReadStreams call.
type ReadStreamsOptions struct {
	// PerStream is the most events yielded for one stream, from 1 to
	// MaxReadTotal. Defaults to DefaultReadPerStream (when 0).
	PerStream int
	// Total is the most events yielded in all, from 1 to MaxReadTotal.
	// Defaults to DefaultReadTotal (when 0).
	Total int
}

// StreamsReader is implemented by journals that read the events of many
// streams, each above its own position, in one round trip.
type StreamsReader interface {
	// ReadStreams yields, stream by stream in the order of from, the
	// non-deleted events of each stream above its position (the
	// Position's SequenceNr: the last one the reader has, 0 for none),
	// ascending, at most opts.PerStream per stream, and stops after
	// opts.Total events in all. What it yields is therefore a prefix of:
	// for each position in order, the first opts.PerStream live events
	// above it. A stream
	// that yields fewer than opts.PerStream events, and is not the last
	// one yielded by a call that reached opts.Total, had no more live
	// events when it was read. Rows are streamed; breaking out of the loop
	// releases the underlying resources; an error is yielded once, as the
	// last element.
	//
	// A stream may appear in from only once. No positions yield nothing
	// and do no I/O. A backend may bound the streams of one round trip and
	// split a larger call into several (pgjournal: MaxReadStreamsBatch
	// streams per statement); the parts are then separate reads. Every id
	// must pass ValidatePersistenceID, and opts must be in range;
	// otherwise the call yields ErrInvalidArgument before any I/O.
	ReadStreams(ctx context.Context, from []Position, opts ReadStreamsOptions) iter.Seq2[Event, error]
}

// ValidateReadStreams checks from and opts as StreamsReader.ReadStreams
// requires and returns opts with the defaults filled in. The error matches
// ErrInvalidArgument.
func ValidateReadStreams(from []Position, opts ReadStreamsOptions) (ReadStreamsOptions, error) {
	var err error
	if opts.PerStream, err = readBound("events per stream", opts.PerStream, DefaultReadPerStream); err != nil {
		return opts, err
	}
	if opts.Total, err = readBound("total of events", opts.Total, DefaultReadTotal); err != nil {
		return opts, err
	}
	var seen map[string]struct{}
	if len(from) > 1 {
		seen = make(map[string]struct{}, len(from))
	}
	for _, p := range from {
		if err := ValidatePersistenceID(p.PersistenceID); err != nil {
			return opts, err
		}
		if seen == nil {
			continue
		}
		if _, dup := seen[p.PersistenceID]; dup {
			return opts, &InvalidArgumentError{Field: "stream positions", Reason: fmt.Sprintf("name persistence id %q more than once", p.PersistenceID)}
		}
		seen[p.PersistenceID] = struct{}{}
	}
	return opts, nil
}

func readBound(field string, n, def int) (int, error) {
	switch {
	case n == 0:
		return def, nil
	case n < 0:
		return n, &InvalidArgumentError{Field: field, Reason: fmt.Sprintf("is negative (%d)", n)}
	case n > MaxReadTotal:
		return n, &InvalidArgumentError{Field: field, Reason: fmt.Sprintf("is %d, over the limit of %d (MaxReadTotal)", n, MaxReadTotal)}
	}
	return n, nil
}
