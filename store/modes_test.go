package store_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/store"
)

// A suite runs once per mode: the same cases on stores in full and in
// incremental mode, as subtests named Full and Incremental. open adds the
// options of the mode a test runs under, told by its name, so that each
// case, written once, runs in both.
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

// chainModes are the two modes for a test that deletes rows of one
// chain: in incremental mode every save is a delta on the last (no
// compaction by size, the default bound on deltas), unlike suiteModes.
var chainModes = []struct {
	name string
	opts []store.Option
}{
	{"full", nil},
	{"incremental", []store.Option{store.WithIncremental(), store.WithCompactionRatio(1e9)}},
}

// modeOf returns the options of the mode t runs under: those of the
// suiteModes entry whose name is an element of t's name, nil (full mode)
// for none.
func modeOf(t testing.TB) []store.Option {
	parts := strings.Split(t.Name(), "/")
	for _, m := range suiteModes {
		if slices.Contains(parts, m.name) {
			return m.opts
		}
	}
	return nil
}

// incremental reports whether t runs in incremental mode.
func incremental(t testing.TB) bool { return modeOf(t) != nil }

// bothModes runs body once per mode, in parallel subtests named for the
// modes.
func bothModes(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	for _, mode := range suiteModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			body(t)
		})
	}
}
