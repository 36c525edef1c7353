package store_test

import (
	"sync"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// A suite runs once per mode: the same table of cases on stores in full
// and in incremental mode. open adds the mode's options for every journal
// a suite's factory made (and the fault journals around them), so that
// each case, written once, runs in both.
var suiteModes = []struct {
	name string
	opts []store.Option
}{
	{"Full", nil},
	// Deltas whatever their size (the cases' outboxes are tiny, where a
	// delta is as large as the snapshot), and a full snapshot after every
	// third delta, so that the cases cross chains and compactions.
	{"Incremental", []store.Option{store.WithIncremental(), store.WithCompactionRatio(1e9), store.WithMaxDeltas(3)}},
}

// modeOptions holds the options of the journals made for a mode's run:
// journal.Journal → []store.Option.
var modeOptions sync.Map

// inMode returns newJournal whose journals open stores with opts.
func inMode(newJournal newJournalFunc, opts []store.Option) newJournalFunc {
	if opts == nil {
		return newJournal
	}
	return func(t *testing.T) journal.Journal {
		j := newJournal(t)
		sameMode(t, j, j)
		modeOptions.Store(j, opts)
		return j
	}
}

// sameMode makes stores opened on j open in the mode of stores on like.
func sameMode(t *testing.T, j, like journal.Journal) {
	if opts, ok := modeOptions.Load(like); ok {
		modeOptions.Store(j, opts)
	}
	t.Cleanup(func() { modeOptions.Delete(j) })
}

// modeOf returns the options of the mode j was made for (nil: full).
func modeOf(j journal.Journal) []store.Option {
	opts, _ := modeOptions.Load(j)
	o, _ := opts.([]store.Option)
	return o
}

// incremental reports whether stores on j open in incremental mode.
func incremental(j journal.Journal) bool { return modeOf(j) != nil }
