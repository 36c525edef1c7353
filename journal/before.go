package journal

import (
	"context"
	"fmt"
	"time"
)

// BeforeReader is implemented by journals that find, for many streams at
// once, the position they had reached at a point in time: what a
// point-in-time rewind of a relay (offsetstore rewind --to-datetime) asks.
type BeforeReader interface {
	// HighestSequenceNrsBefore returns, for each given persistence id, the
	// highest sequence number among its rows written before before
	// (WrittenAt < before, strictly: an event written at exactly before is
	// not counted), or 0 when it has no such row. The map has one entry per
	// distinct id given; repeating an id is allowed. No ids give an empty
	// map and no I/O.
	//
	// Rows are the journal's rows as they are now: the row DeleteTo keeps
	// at the top of a stream, marked Deleted, counts with the time its
	// event was written; the rows DeleteTo removed are unknown, as is a
	// stream with no row at all (0). Where WrittenAt grows with the
	// sequence number along a stream (one writer per stream, as an
	// event-sourced aggregate has), every event above the number returned
	// was written at or after before, and every event at or below it
	// before: the number a relay resumes after to publish again exactly
	// what was written since before.
	//
	// A backend may bound the ids of one round trip and split a larger call
	// into several (pgjournal: MaxHighestBatch ids per statement); the
	// split parts are then separate reads. Every id must pass
	// ValidatePersistenceID and before ValidateTime; otherwise the call
	// fails with ErrInvalidArgument before any I/O.
	HighestSequenceNrsBefore(ctx context.Context, persistenceIDs []string, before time.Time) (map[string]uint64, error)
}

// MinTime and MaxTime bound the times a journal is asked about: the years
// 1 to 9999 in UTC, the range of RFC 3339 and well inside PostgreSQL's
// timestamptz.
var (
	MinTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, time.December, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// ValidateTime checks that t lies within MinTime..MaxTime. The error
// matches ErrInvalidArgument.
func ValidateTime(t time.Time) error {
	if t.Before(MinTime) || t.After(MaxTime) {
		return &InvalidArgumentError{Field: "time", Reason: fmt.Sprintf("%s is outside the years 1 to 9999", t.UTC().Format(time.RFC3339Nano))}
	}
	return nil
}
