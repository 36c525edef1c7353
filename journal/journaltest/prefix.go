package journaltest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// testListPrefix checks ListOptions.Prefix with ids that a linguistic
// collation (libc or ICU, where punctuation weighs little) sorts in among
// the prefixed ones, so that a backend that took the prefix for a range of
// its order would list too many or too few.
func testListPrefix(t *testing.T, j journal.Journal) {
	l := streamLister(t, j)
	prefixed := []string{
		"outbox::a::offsets", "outbox::b::offsets", "outbox::", "outbox:::x",
		"outbox::z", "outbox::ä::offsets", "outbox::日本::offsets", "outbox::A",
	}
	others := []string{
		"outbox:;x", "outboxa", "outbox-y", "outbox:", "outbox", "Outbox::c", "OUTBOX::d",
		"outbox :: e", "outbox_::f", "a", "z", "outbox;:g", "outbox:\u00a0:h",
	}
	appendStreams(t, j, 1, append(slices.Clone(prefixed), others...)...)

	one := list(t, l, journal.ListOptions{Prefix: "outbox::", Limit: journal.MaxListLimit})
	if got, want := sortedCopy(one), sortedCopy(prefixed); !slices.Equal(got, want) {
		t.Fatalf("PersistenceIDs with prefix outbox:: = %q, want %q (in any order)", got, want)
	}
	// Listed in the backend's order, as without a prefix.
	all := list(t, l, journal.ListOptions{Limit: journal.MaxListLimit})
	inOrder := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return !strings.HasPrefix(id, "outbox::") })
	wantIDs(t, "PersistenceIDs with prefix outbox:: (order)", one, inOrder)
	for _, limit := range []int{1, 2, 3, len(prefixed)} {
		paged := listAll(t, l, journal.ListOptions{Prefix: "outbox::", Limit: limit})
		wantIDs(t, fmt.Sprintf("pages of %d with prefix outbox::", limit), paged, one)
	}
	// After in the middle of the prefixed ids, and before all of them.
	wantIDs(t, "prefix, after the third", list(t, l, journal.ListOptions{Prefix: "outbox::", After: one[2]}), one[3:])
	wantIDs(t, "prefix, after a bound below every id", list(t, l, journal.ListOptions{Prefix: "outbox::", After: "\x01"}), one)
	// With an excluded prefix too: both apply.
	both := list(t, l, journal.ListOptions{Prefix: "outbox::", ExcludePrefix: "outbox::a", Limit: journal.MaxListLimit})
	want := slices.DeleteFunc(slices.Clone(one), func(id string) bool { return strings.HasPrefix(id, "outbox::a") })
	wantIDs(t, "prefix outbox:: excluding outbox::a", both, want)
	// A prefix is bytes, not a pattern, and no id has this one.
	appendStreams(t, j, 1, "50%_off", "5000")
	wantIDs(t, "prefix 50%", list(t, l, journal.ListOptions{Prefix: "50%"}), []string{"50%_off"})
	wantIDs(t, "prefix that no id has", list(t, l, journal.ListOptions{Prefix: "outbox::zz"}), []string{})
}
