package journal

import (
	"context"
	"fmt"
	"iter"
)

// DefaultListLimit is the page size of StreamLister.PersistenceIDs when
// ListOptions.Limit is 0.
const DefaultListLimit = 1000

// MaxListLimit is the largest page StreamLister.PersistenceIDs returns: a
// page is held in memory whole, so its size is bounded.
const MaxListLimit = 100_000

// ListOptions selects a page of persistence ids.
type ListOptions struct {
	// After is the exclusive lower bound: only ids that sort after it are
	// listed. Pass the last id of the previous page to get the next one.
	// Defaults to "" (from the first id).
	After string
	// Limit is the most ids one call returns, from 1 to MaxListLimit.
	// Defaults to DefaultListLimit (when 0). Negative or larger values fail
	// with ErrInvalidArgument.
	Limit int
	// ExcludePrefix, when not empty, leaves out every id that starts with
	// it, byte for byte. The offset store's own streams all start with
	// "outbox::" (see store.PersistenceID); a relay that discovers its
	// sources passes that. Defaults to "" (nothing excluded).
	ExcludePrefix string
	// Prefix, when not empty, lists only the ids that start with it, byte
	// for byte: store.PersistenceIDPrefix lists the offset store's
	// streams, one per outbox. A backend reads no more than the ids that
	// start with it where its order keeps them together (pgjournal: a
	// column whose collation orders as bytes) and otherwise filters every
	// id (see the backend's doc). Defaults to "" (every id).
	Prefix string
}

// StreamLister is implemented by journals that list their persistence ids
// in order, page by page.
type StreamLister interface {
	// PersistenceIDs returns up to opts.Limit persistence ids greater than
	// opts.After, ascending, each once. A stream is listed once it has a
	// row, deleted rows included (DeleteTo keeps a stream's highest row, so
	// a stream once written stays listed). Fewer than opts.Limit ids (none
	// included) means there are no more.
	//
	// The order is the backend's: byte order for Memory, the collation
	// order of the persistence_id column for pgjournal. Paging with After
	// set to the last id of the previous page visits every id exactly once
	// in that order; ids written meanwhile appear if they sort after the
	// page being read.
	//
	// After, ExcludePrefix and Prefix must be valid UTF-8 without NUL bytes, and
	// Limit within 0..MaxListLimit; otherwise the call fails with
	// ErrInvalidArgument before any I/O.
	PersistenceIDs(ctx context.Context, opts ListOptions) ([]string, error)
}

// HighestReader is implemented by journals that read the highest sequence
// numbers of many streams at once.
type HighestReader interface {
	// HighestSequenceNrs returns the highest sequence number of each given
	// persistence id (deleted rows included, as HighestSequenceNr), 0 for
	// an unknown id, in one round trip. The map has one entry per distinct
	// id given; repeating an id is allowed. No ids give an empty map and no
	// I/O.
	//
	// A backend may bound the ids of one round trip and split a larger
	// call into several (pgjournal: MaxHighestBatch ids per statement);
	// the split parts are then separate reads. Every id must pass
	// ValidatePersistenceID; otherwise the call fails with
	// ErrInvalidArgument before any I/O.
	HighestSequenceNrs(ctx context.Context, persistenceIDs []string) (map[string]uint64, error)
}

// ValidateListOptions checks opts as StreamLister.PersistenceIDs requires
// and returns them with the default limit filled in. The error matches
// ErrInvalidArgument.
func ValidateListOptions(opts ListOptions) (ListOptions, error) {
	switch {
	case opts.Limit < 0:
		return opts, &InvalidArgumentError{Field: "list limit", Reason: fmt.Sprintf("is negative (%d)", opts.Limit)}
	case opts.Limit > MaxListLimit:
		return opts, &InvalidArgumentError{Field: "list limit", Reason: fmt.Sprintf("is %d, over the limit of %d (MaxListLimit)", opts.Limit, MaxListLimit)}
	case opts.Limit == 0:
		opts.Limit = DefaultListLimit
	}
	if err := validateText("list bound (After)", opts.After); err != nil {
		return opts, err
	}
	if err := validateText("excluded prefix", opts.ExcludePrefix); err != nil {
		return opts, err
	}
	if err := validateText("prefix", opts.Prefix); err != nil {
		return opts, err
	}
	return opts, nil
}

// ReadHighest returns the highest sequence number of each of
// persistenceIDs in j: with HighestSequenceNrs when j is a HighestReader,
// else with one HighestSequenceNr per id, after checking every id (an
// invalid one fails the call with ErrInvalidArgument before any I/O).
func ReadHighest(ctx context.Context, j Journal, persistenceIDs []string) (map[string]uint64, error) {
	if h, ok := j.(HighestReader); ok {
		return h.HighestSequenceNrs(ctx, persistenceIDs)
	}
	for _, pid := range persistenceIDs {
		if err := ValidatePersistenceID(pid); err != nil {
			return nil, err
		}
	}
	out := make(map[string]uint64, len(persistenceIDs))
	for _, pid := range persistenceIDs {
		hi, err := j.HighestSequenceNr(ctx, pid)
		if err != nil {
			return nil, err
		}
		out[pid] = hi
	}
	return out, nil
}

// AllPersistenceIDs yields every persistence id of l after opts.After, in
// l's order, reading pages of opts.Limit ids. An error is yielded once, as
// the last element. Breaking out of the loop stops the reads.
func AllPersistenceIDs(ctx context.Context, l StreamLister, opts ListOptions) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for {
			page, err := l.PersistenceIDs(ctx, opts)
			if err != nil {
				yield("", err)
				return
			}
			for _, pid := range page {
				if !yield(pid, nil) {
					return
				}
			}
			limit := opts.Limit
			if limit == 0 {
				limit = DefaultListLimit
			}
			if len(page) < limit {
				return
			}
			opts.After = page[len(page)-1]
		}
	}
}
