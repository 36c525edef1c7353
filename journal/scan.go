package journal

import (
	"context"
	"iter"
)

// DefaultScanLimit is ScanOptions.Limit when 0.
const DefaultScanLimit = 10_000

// ScanOptions select a page of a Scan.
type ScanOptions struct {
	// After is the exclusive lower bound, an event's key: the scan yields
	// the events that sort after (After.PersistenceID, After.SequenceNr). Pass
	// the last event of the previous page to get the next one. Defaults to
	// the zero Position (from the first event).
	After Position
	// Limit is the most events one call yields, from 1 to MaxReadTotal.
	// Defaults to DefaultScanLimit (when 0).
	Limit int
	// ExcludePrefix, when not empty, leaves out every stream whose id
	// starts with it, byte for byte, as ListOptions.ExcludePrefix does.
	// Defaults to "" (nothing excluded).
	ExcludePrefix string
}

// Scanner is implemented by journals that read the events of every
// stream in key order, at the speed of one streaming read: the way to
// catch up on a whole journal, where reading stream by stream would cost
// a lookup per stream.
type Scanner interface {
	// Scan yields up to opts.Limit non-deleted events whose key
	// (PersistenceID, SequenceNr) sorts after opts.After, in key order:
	// stream by stream in the order StreamLister lists them (the
	// backend's: byte order for Memory, the column's collation for
	// pgjournal), each stream's events ascending. Fewer than opts.Limit
	// events (none included) mean there are no more. Paging with After set
	// to the last event yielded visits every event once; events written
	// meanwhile appear if they sort after the page being read.
	//
	// Rows are streamed; breaking out of the loop releases the underlying
	// resources; an error is yielded once, as the last element. An
	// After.PersistenceID that is not empty must pass
	// ValidatePersistenceID, ExcludePrefix must be valid UTF-8 without
	// NUL bytes and Limit within 0..MaxReadTotal; otherwise the call
	// yields ErrInvalidArgument before any I/O.
	Scan(ctx context.Context, opts ScanOptions) iter.Seq2[Event, error]
}

// ValidateScanOptions checks opts as Scanner.Scan requires and returns
// them with the default limit filled in. The error matches
// ErrInvalidArgument.
func ValidateScanOptions(opts ScanOptions) (ScanOptions, error) {
	var err error
	if opts.Limit, err = readBound("scan limit", opts.Limit, DefaultScanLimit); err != nil {
		return opts, err
	}
	if opts.After.PersistenceID != "" {
		if err := ValidatePersistenceID(opts.After.PersistenceID); err != nil {
			return opts, err
		}
	}
	if err := validateText("excluded prefix", opts.ExcludePrefix); err != nil {
		return opts, err
	}
	return opts, nil
}
