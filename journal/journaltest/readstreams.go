package journaltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// RunStreamsReader checks journal.StreamsReader. Run calls it for journals
// that implement the interface; it fails the test for one that does not.
func RunStreamsReader(t *testing.T, newJournal Factory) {
	t.Helper()
	runAll(t, newJournal, []subtest{
		{"Positions", testReadStreamsPositions},
		{"PerStream", testReadStreamsPerStream},
		{"Total", testReadStreamsTotal},
		{"Deleted", testReadStreamsDeleted},
		{"FarPositions", testReadStreamsFar},
		{"None", testReadStreamsNone},
		{"Many", testReadStreamsMany},
		{"Model", testReadStreamsModel},
		{"Break", testReadStreamsBreak},
		{"Invalid", testReadStreamsInvalid},
		{"Cancelled", testReadStreamsCancelled},
	})
}

func streamsReader(t *testing.T, j journal.Journal) journal.StreamsReader {
	t.Helper()
	r, ok := j.(journal.StreamsReader)
	if !ok {
		t.Fatalf("%T does not implement journal.StreamsReader", j)
	}
	return r
}

// readStreams runs ReadStreams to its end and returns the events.
func readStreams(t *testing.T, r journal.StreamsReader, from []journal.Position, opts journal.ReadStreamsOptions) []journal.Event {
	t.Helper()
	events, err := replayChecked(r.ReadStreams(t.Context(), from, opts))
	if err != nil {
		t.Fatalf("ReadStreams(%d positions, %+v): %v", len(from), opts, err)
	}
	return events
}

// expectStreams is what ReadStreams must yield, computed with Replay: for
// each position in order, the first perStream live events above After,
// cut after total events.
func expectStreams(t *testing.T, j journal.Journal, from []journal.Position, perStream, total int) []journal.Event {
	t.Helper()
	var want []journal.Event
	for _, p := range from {
		if p.SequenceNr >= journal.MaxSequenceNr {
			continue
		}
		want = append(want, replay(t, j, p.PersistenceID, p.SequenceNr+1, math.MaxUint64, uint64(perStream))...)
	}
	if len(want) > total {
		want = want[:total]
	}
	return want
}

// wantEvents checks got against want event by event, every field.
func wantEvents(t *testing.T, what string, got, want []journal.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events %s, want %d %s", what, len(got), keys(got), len(want), keys(want))
	}
	for i := range got {
		if d := diffEvent(got[i], want[i]); d != "" {
			t.Fatalf("%s: event %d (%q, %d): %s", what, i, want[i].PersistenceID, want[i].SequenceNr, d)
		}
	}
}

// keys prints the (pid, seq) pairs of events, abbreviated.
func keys(events []journal.Event) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, ev := range events {
		if i == 12 {
			fmt.Fprintf(&b, " … %d more", len(events)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s/%d", ev.PersistenceID, ev.SequenceNr)
	}
	b.WriteByte(']')
	return b.String()
}

func testReadStreamsPositions(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evts("a", 1, 5)...)
	mustAppend(t, j, evts("b", 1, 3)...)
	mustAppend(t, j, evt("gap", 2), evt("gap", 9))
	from := []journal.Position{pos("a", 2), pos("unknown", 0), pos("b", 0), pos("gap", 1), pos("ünï ✓ 'q'", 0)}
	got := readStreams(t, r, from, journal.ReadStreamsOptions{})
	wantEvents(t, "ReadStreams", got, expectStreams(t, j, from, journal.DefaultReadPerStream, journal.DefaultReadTotal))
	wantSeqs(t, "ReadStreams", got, []uint64{3, 4, 5, 1, 2, 3, 2, 9})
	// The order of the positions is the order of the streams.
	from = []journal.Position{pos("b", 1), pos("a", 4)}
	got = readStreams(t, r, from, journal.ReadStreamsOptions{})
	wantEvents(t, "ReadStreams (b before a)", got, expectStreams(t, j, from, journal.DefaultReadPerStream, journal.DefaultReadTotal))
}

func testReadStreamsPerStream(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evts("a", 1, 5)...)
	mustAppend(t, j, evts("b", 1, 3)...)
	from := []journal.Position{pos("a", 0), pos("b", 1)}
	for _, per := range []int{1, 2, 3, 5, 6} {
		got := readStreams(t, r, from, journal.ReadStreamsOptions{PerStream: per})
		wantEvents(t, fmt.Sprintf("ReadStreams, %d per stream", per), got, expectStreams(t, j, from, per, journal.DefaultReadTotal))
	}
}

func testReadStreamsTotal(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evts("a", 1, 5)...)
	mustAppend(t, j, evts("b", 1, 3)...)
	mustAppend(t, j, evts("c", 1, 2)...)
	from := []journal.Position{pos("c", 0), pos("a", 1), pos("b", 0)}
	for _, total := range []int{1, 2, 3, 5, 6, 8, 9, 100} {
		for _, per := range []int{2, 10} {
			opts := journal.ReadStreamsOptions{PerStream: per, Total: total}
			got := readStreams(t, r, from, opts)
			wantEvents(t, fmt.Sprintf("ReadStreams %+v", opts), got, expectStreams(t, j, from, per, total))
		}
	}
}

func testReadStreamsDeleted(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evts("pruned", 1, 6)...)
	mustAppend(t, j, evts("emptied", 1, 3)...)
	mustAppend(t, j, evts("after", 1, 2)...)
	mustDeleteTo(t, j, "pruned", 3)
	mustDeleteTo(t, j, "emptied", 3)
	from := []journal.Position{pos("pruned", 1), pos("emptied", 0), pos("after", 0)}
	got := readStreams(t, r, from, journal.ReadStreamsOptions{PerStream: 2})
	wantEvents(t, "ReadStreams over deleted rows", got, expectStreams(t, j, from, 2, journal.DefaultReadTotal))
	wantSeqs(t, "ReadStreams over deleted rows", got, []uint64{4, 5, 1, 2})
}

func testReadStreamsFar(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evts("a", 1, 3)...)
	mustAppend(t, j, evt("top", journal.MaxSequenceNr))
	from := []journal.Position{
		pos("a", math.MaxUint64), pos("a2", journal.MaxSequenceNr), pos("top", journal.MaxSequenceNr-1), pos("b", math.MaxInt64+1),
	}
	got := readStreams(t, r, from, journal.ReadStreamsOptions{})
	wantSeqs(t, "ReadStreams above the last possible number", got, []uint64{journal.MaxSequenceNr})
	if got[0].PersistenceID != "top" {
		t.Fatalf("ReadStreams yielded %s, want top/%d", keys(got), uint64(journal.MaxSequenceNr))
	}
	got = readStreams(t, r, []journal.Position{pos("a", 3), pos("top", journal.MaxSequenceNr)}, journal.ReadStreamsOptions{})
	if len(got) != 0 {
		t.Fatalf("ReadStreams at the heads yielded %s, want nothing", keys(got))
	}
}

func testReadStreamsNone(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evt("a", 1))
	for _, from := range [][]journal.Position{nil, {}} {
		if got := readStreams(t, r, from, journal.ReadStreamsOptions{}); len(got) != 0 {
			t.Fatalf("ReadStreams(%#v) yielded %s, want nothing", from, keys(got))
		}
	}
}

// testReadStreamsMany reads more streams than a backend may send in one
// statement (pgjournal: MaxReadStreamsBatch), with the total cutting in
// the last part.
func testReadStreamsMany(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	const n = 2500
	var events []journal.Event
	from := make([]journal.Position, 0, n)
	for i := range n {
		pid := fmt.Sprintf("many-%04d", i)
		events = append(events, evts(pid, 1, uint64(1+i%3))...)
		from = append(from, pos(pid, uint64(i%2)))
	}
	mustAppend(t, j, events...)
	for _, opts := range []journal.ReadStreamsOptions{{PerStream: 2, Total: journal.MaxReadTotal}, {PerStream: 1, Total: 2400}} {
		got := readStreams(t, r, from, opts)
		wantEvents(t, fmt.Sprintf("ReadStreams of %d streams, %+v", n, opts), got, expectStreams(t, j, from, opts.PerStream, opts.Total))
	}
}

// testReadStreamsModel compares random reads with the same reads done
// with Replay.
func testReadStreamsModel(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	rng := rand.New(rand.NewPCG(7, 26))
	var pids []string
	for i := range 12 {
		pid := fmt.Sprintf("m%02d", i)
		pids = append(pids, pid)
		if n := uint64(rng.IntN(9)); n > 0 {
			mustAppend(t, j, evts(pid, 1, n)...)
			if rng.IntN(3) == 0 {
				mustDeleteTo(t, j, pid, uint64(rng.IntN(int(n)+1)))
			}
		}
	}
	for round := range 40 {
		var from []journal.Position
		for _, k := range rng.Perm(len(pids))[:1+rng.IntN(len(pids))] {
			from = append(from, pos(pids[k], uint64(rng.IntN(10))))
		}
		opts := journal.ReadStreamsOptions{PerStream: 1 + rng.IntN(5), Total: 1 + rng.IntN(30)}
		got := readStreams(t, r, from, opts)
		wantEvents(t, fmt.Sprintf("round %d: ReadStreams(%v, %+v)", round, from, opts), got, expectStreams(t, j, from, opts.PerStream, opts.Total))
	}
}

func testReadStreamsBreak(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	var from []journal.Position
	for i := range 50 {
		pid := fmt.Sprintf("b%02d", i)
		mustAppend(t, j, evts(pid, 1, 20)...)
		from = append(from, pos(pid, 0))
	}
	// Break out early, many times: a backend that leaked a connection per
	// abandoned read runs out of them.
	for range 20 {
		n := 0
		for _, err := range r.ReadStreams(t.Context(), from, journal.ReadStreamsOptions{}) {
			if err != nil {
				t.Fatalf("ReadStreams: %v", err)
			}
			if n++; n == 3 {
				break
			}
		}
	}
	got := readStreams(t, r, from[:2], journal.ReadStreamsOptions{})
	wantEvents(t, "ReadStreams after broken reads", got, expectStreams(t, j, from[:2], journal.DefaultReadPerStream, journal.DefaultReadTotal))
}

func testReadStreamsInvalid(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evt("ok", 1))
	for _, tc := range []struct {
		name string
		from []journal.Position
		opts journal.ReadStreamsOptions
	}{
		{"empty id", []journal.Position{pos("ok", 0), pos("", 0)}, journal.ReadStreamsOptions{}},
		{"NUL in id", []journal.Position{pos("a\x00b", 0)}, journal.ReadStreamsOptions{}},
		{"invalid UTF-8", []journal.Position{pos("\xff", 0)}, journal.ReadStreamsOptions{}},
		{"long id", []journal.Position{pos(strings.Repeat("x", journal.MaxPersistenceIDLen+1), 0)}, journal.ReadStreamsOptions{}},
		{"twice", []journal.Position{pos("ok", 0), pos("x", 0), pos("ok", 1)}, journal.ReadStreamsOptions{}},
		{"negative per stream", []journal.Position{pos("ok", 0)}, journal.ReadStreamsOptions{PerStream: -1}},
		{"negative total", []journal.Position{pos("ok", 0)}, journal.ReadStreamsOptions{Total: -1}},
		{"total too large", []journal.Position{pos("ok", 0)}, journal.ReadStreamsOptions{Total: journal.MaxReadTotal + 1}},
		{"per stream too large", []journal.Position{pos("ok", 0)}, journal.ReadStreamsOptions{PerStream: journal.MaxReadTotal + 1}},
	} {
		elems := drain(r.ReadStreams(t.Context(), tc.from, tc.opts))
		if len(elems) != 1 {
			t.Fatalf("%s: ReadStreams yielded %d elements, want one error", tc.name, len(elems))
		}
		wantInvalid(t, "ReadStreams, "+tc.name, elems[0].err)
	}
}

func testReadStreamsCancelled(t *testing.T, j journal.Journal) {
	r := streamsReader(t, j)
	mustAppend(t, j, evts("a", 1, 3)...)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	elems := drain(r.ReadStreams(ctx, []journal.Position{pos("a", 0)}, journal.ReadStreamsOptions{}))
	if len(elems) != 1 || !errors.Is(elems[0].err, context.Canceled) {
		t.Fatalf("ReadStreams with a cancelled context yielded %d elements (first error %v), want one context.Canceled", len(elems), firstErr(elems))
	}
	got := readStreams(t, r, []journal.Position{pos("a", 0)}, journal.ReadStreamsOptions{})
	wantSeqs(t, "ReadStreams after a cancelled one", got, []uint64{1, 2, 3})
}

func firstErr(elems []element) error {
	for _, e := range elems {
		if e.err != nil {
			return e.err
		}
	}
	return nil
}
