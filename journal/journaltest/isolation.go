package journaltest

import (
	"math"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunIsolation checks that streams never see each other's events,
// including persistence ids that are prefixes of each other, differ only in
// case or spacing, or contain SQL LIKE and regular-expression wildcards.
func RunIsolation(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"PersistenceIDs", testIsolation},
	})
}

func testIsolation(t *testing.T, j journal.Journal) {
	pids := []string{
		"a", "ab", "abc", "A", "a ", " a", "b",
		"a%", "a_", "%", "_", `a\`, `a\%`, "a*", "a.*", ".*", "[a]",
		"a:1", "a::1", "outbox::x::offsets", "outbox::x::offsets::y", "outbox::x",
		"ü", "u", "u\u0308", // precomposed and decomposed ü are different ids
	}
	// pids[i] gets i+1 events, all in one batch.
	var batch []journal.Event
	for i, pid := range pids {
		batch = append(batch, evts(pid, 1, uint64(i+1))...)
	}
	mustAppend(t, j, batch...)
	check := func(deleted map[string]uint64) {
		t.Helper()
		for i, pid := range pids {
			n := uint64(i + 1)
			wantStream(t, j, pid, n, seqRange(deleted[pid]+1, n))
		}
	}
	check(nil)

	// Deleting from some streams leaves the others alone.
	deleted := map[string]uint64{"a": math.MaxUint64, "a%": 5, "%": 9, "outbox::x": 100}
	for pid, to := range deleted {
		mustDeleteTo(t, j, pid, to)
	}
	for pid, to := range deleted {
		// What was removed, at most the highest (which is kept, deleted).
		for i, p := range pids {
			if p == pid {
				deleted[pid] = min(to, uint64(i+1))
			}
		}
	}
	check(deleted)

	// The same sequence number in another stream is no conflict.
	mustAppend(t, j, evt("a", 2), evt("ab", 3), evt("fresh", 1))
	wantStream(t, j, "a", 2, []uint64{2})
	wantStream(t, j, "ab", 3, []uint64{1, 2, 3})
	wantStream(t, j, "fresh", 1, []uint64{1})
}
