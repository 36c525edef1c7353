package journal_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/journaltest"
)

func TestMemoryConformance(t *testing.T) {
	t.Run("NewMemory", func(t *testing.T) {
		t.Parallel()
		journaltest.Run(t, func(t *testing.T) journal.Journal { return journal.NewMemory() })
	})
	t.Run("ZeroValue", func(t *testing.T) {
		t.Parallel()
		journaltest.Run(t, func(t *testing.T) journal.Journal { return new(journal.Memory) })
	})
}

func memEvents(pid string, from, to uint64) []journal.Event {
	var events []journal.Event
	for seq := from; seq <= to; seq++ {
		events = append(events, journal.Event{PersistenceID: pid, SequenceNr: seq, Payload: fmt.Appendf(nil, "%d", seq)})
	}
	return events
}

func replaySeqs(t *testing.T, j journal.Journal, pid string) []uint64 {
	t.Helper()
	events, err := journaltest.Collect(j.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64))
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	var seqs []uint64
	for _, ev := range events {
		seqs = append(seqs, ev.SequenceNr)
	}
	return seqs
}

// Replay on Memory iterates over the range as it was when the iteration
// started, whatever the loop body writes.
func TestMemoryReplayIsSnapshot(t *testing.T) {
	t.Parallel()
	const pid = "p"
	cases := []struct {
		name  string
		write func(t *testing.T, m *journal.Memory)
		after []uint64
	}{
		{"AppendAtEnd", func(t *testing.T, m *journal.Memory) {
			if err := m.Append(t.Context(), memEvents(pid, 11, 20)...); err != nil {
				t.Fatal(err)
			}
		}, seqRange(1, 20)},
		{"DeletePrefix", func(t *testing.T, m *journal.Memory) {
			if err := m.DeleteTo(t.Context(), pid, 5); err != nil {
				t.Fatal(err)
			}
		}, seqRange(6, 10)},
		{"DeleteAllThenInsertBelow", func(t *testing.T, m *journal.Memory) {
			if err := m.DeleteTo(t.Context(), pid, math.MaxUint64); err != nil {
				t.Fatal(err)
			}
			if err := m.Append(t.Context(), memEvents(pid, 3, 3)...); err != nil {
				t.Fatal(err)
			}
			if err := m.Append(t.Context(), memEvents(pid, 11, 11)...); err != nil {
				t.Fatal(err)
			}
		}, []uint64{3, 11}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := journal.NewMemory()
			if err := m.Append(t.Context(), memEvents(pid, 1, 10)...); err != nil {
				t.Fatal(err)
			}
			var seen []uint64
			for ev, err := range m.Replay(t.Context(), pid, 1, math.MaxUint64, math.MaxUint64) {
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprint(ev.SequenceNr); string(ev.Payload) != want || ev.Deleted {
					t.Fatalf("event %d: payload %q, deleted %v; want %q, false", ev.SequenceNr, ev.Payload, ev.Deleted, want)
				}
				seen = append(seen, ev.SequenceNr)
				if len(seen) == 1 {
					tc.write(t, m)
				}
			}
			if want := seqRange(1, 10); !slices.Equal(seen, want) {
				t.Fatalf("Replay yielded %v, want the snapshot %v", seen, want)
			}
			if got := replaySeqs(t, m, pid); !slices.Equal(got, tc.after) {
				t.Fatalf("Replay after the writes = %v, want %v", got, tc.after)
			}
		})
	}
}

// A long-running stream with retention: append one event at a time and
// keep only the newest few, the way the offset store uses a journal.
func TestMemoryRetention(t *testing.T) {
	t.Parallel()
	const pid, keep = "retention", 3
	n := uint64(100_000)
	if testing.Short() {
		n = 10_000
	}
	m := journal.NewMemory()
	for seq := uint64(1); seq <= n; seq++ {
		if err := m.Append(t.Context(), memEvents(pid, seq, seq)...); err != nil {
			t.Fatal(err)
		}
		if seq > keep && seq%7 == 0 {
			if err := m.DeleteTo(t.Context(), pid, seq-keep); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := replaySeqs(t, m, pid)
	if len(got) < keep || len(got) > keep+7 || got[len(got)-1] != n {
		t.Fatalf("Replay after retention = %v, want the newest %d to %d events", got, keep, keep+7)
	}
}

func seqRange(from, to uint64) []uint64 {
	var seqs []uint64
	for seq := from; seq <= to; seq++ {
		seqs = append(seqs, seq)
	}
	return seqs
}

func BenchmarkMemoryAppend(b *testing.B) {
	const batch = 1000
	m := journal.NewMemory()
	events := memEvents("", 1, batch)
	i := 0
	for b.Loop() {
		// A new stream each time, so that the journal's size is all that
		// grows.
		i++
		pid := fmt.Sprint("bench-", i)
		for k := range events {
			events[k].PersistenceID = pid
		}
		if err := m.Append(b.Context(), events...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkMemoryReplay(b *testing.B) {
	const n = 100_000
	m := journal.NewMemory()
	for from := uint64(1); from <= n; from += 1000 {
		if err := m.Append(b.Context(), memEvents("bench", from, from+999)...); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		count := 0
		for _, err := range m.Replay(b.Context(), "bench", 1, math.MaxUint64, math.MaxUint64) {
			if err != nil {
				b.Fatal(err)
			}
			count++
		}
		if count != n {
			b.Fatalf("replayed %d events, want %d", count, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}
