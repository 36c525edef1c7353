package reliability

import (
	"fmt"
	"maps"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// Mode is a store mode the reliability tests run in.
type Mode struct {
	Name    string
	Options []store.Option
}

// Modes are full mode and incremental mode. Incremental mode keeps the
// default compaction ratio and writes a full snapshot after every fourth
// delta, so that the faults also fall on compactions.
var Modes = []Mode{
	{Name: "Full"},
	{Name: "Incremental", Options: []store.Option{store.WithIncremental(), store.WithMaxDeltas(4)}},
}

// With returns the mode's options followed by opts.
func (m Mode) With(opts ...store.Option) []store.Option {
	return append(append([]store.Option(nil), m.Options...), opts...)
}

// ForEachMode runs body as a subtest per mode, in parallel when parallel
// is true.
func ForEachMode(t *testing.T, parallel bool, body func(t *testing.T, m Mode)) {
	for _, m := range Modes {
		t.Run(m.Name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			body(t, m)
		})
	}
}

// NextOffsets returns the offsets row ev holds, given those of the row
// just before it (prev): a full snapshot's own, a delta's applied to a copy
// of prev.
func NextOffsets(prev map[string]uint64, prevSeq uint64, ev journal.Event) (map[string]uint64, error) {
	r, err := store.DecodeRow(ev)
	if err != nil {
		return nil, err
	}
	if r.Kind == store.RowFull {
		return r.Offsets, nil
	}
	if r.Base != prevSeq {
		return nil, fmt.Errorf("row %d: a delta on row %d, not on the row before (%d)", ev.SequenceNr, r.Base, prevSeq)
	}
	m := maps.Clone(prev)
	maps.Copy(m, r.Offsets)
	for _, k := range r.Removed {
		delete(m, k)
	}
	return m, nil
}
