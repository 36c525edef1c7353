package pgjournal

import (
	"math"

	"github.com/outboxkit/offsetstore/journal"
)

// ForceCopy makes Append send every batch with COPY.
func ForceCopy(j *Journal) { j.copyThreshold, j.copyMinBytes = 1, 0 }

// ForceInsert makes Append send every batch with INSERT.
func ForceInsert(j *Journal) { j.copyThreshold, j.copyMinBytes = math.MaxInt, math.MaxInt }

// UseCopy reports which statement Append sends events with.
func UseCopy(j *Journal, events []journal.Event) bool { return j.useCopy(events) }

// LocateConflict exposes locateConflict to the external tests.
var LocateConflict = locateConflict

// DecodeTags exposes decodeTags to the external tests.
var DecodeTags = decodeTags
