package monitor

import (
	"cmp"
	"slices"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// Figures are what one poll read of one outbox.
type Figures struct {
	// Outbox is the outbox's name.
	Outbox string
	// At is the time of the poll (the monitor's clock), from which the
	// ages below are measured.
	At time.Time
	// Err is why the outbox could not be read: its snapshot cannot be
	// decoded (store.ErrCorruptSnapshot), or the journal failed. The
	// figures below are then zero.
	Err error
	// Found is false when the journal holds no live snapshot of the
	// outbox.
	Found bool

	// SequenceNr, SnapshotWrittenAt, Writer and Mode describe the newest
	// snapshot row (store.Info); Keys is the number of its keys.
	SequenceNr        uint64
	SnapshotWrittenAt time.Time
	Writer            string
	Mode              store.Mode
	Keys              int
	// SnapshotAge is At − SnapshotWrittenAt (0 when the row is from the
	// monitor's future: a clock skew).
	SnapshotAge time.Duration

	// Lag is the sum over keys of the stream's highest sequence number −
	// the key's offset, where positive: the events not yet published.
	// Streams without a key count with offset 0 when the monitor counts
	// them (see Unseen).
	Lag uint64
	// LagMax is the largest lag of one key.
	LagMax uint64
	// LagTime is the age of the oldest event not yet published: At −
	// written_at of the first event above each key's offset, the oldest
	// over keys; 0 when nothing waits.
	LagTime time.Duration
	// Behind is the number of keys (and unseen streams) with a lag;
	// Ahead the number of keys whose offset is past their stream's highest
	// number (a rewind too far forward, or a stream deleted and made
	// anew).
	Behind, Ahead int
	// Unseen is the number of source streams counted without a key (see
	// UnseenCount); their lag is in Lag.
	Unseen int
	// Top are the keys with the largest lag, largest first (ties by key),
	// at most the monitor's WithTop.
	Top []KeyLag
	// Rewound is the number of keys whose offset went down, or that were
	// dropped, between the snapshot of the previous poll and this one's.
	Rewound int
}

// KeyLag is the lag of one key.
type KeyLag struct {
	Key       string
	Offset    uint64
	Highest   uint64
	Lag       int64
	WrittenAt time.Time // of the first event above Offset; zero when none
	Unseen    bool      // a stream the outbox has no key for
}

// sumLags fills the lag figures of f from the StreamLags of its keys and
// unseen streams, keeping the top largest.
func (f *Figures) sumLags(lags []journal.StreamLag, unseen map[string]struct{}, top int) {
	var oldest time.Time
	var behind []KeyLag
	for _, l := range lags {
		n := l.Lag()
		if n < 0 {
			f.Ahead++
			continue
		}
		f.Behind++
		f.Lag += uint64(n)
		f.LagMax = max(f.LagMax, uint64(n))
		if !l.NextWrittenAt.IsZero() && (oldest.IsZero() || l.NextWrittenAt.Before(oldest)) {
			oldest = l.NextWrittenAt
		}
		if top > 0 {
			_, u := unseen[l.PersistenceID]
			behind = append(behind, KeyLag{Key: l.PersistenceID, Offset: l.Offset, Highest: l.Highest, Lag: n, WrittenAt: l.NextWrittenAt, Unseen: u})
		}
	}
	if !oldest.IsZero() && f.At.After(oldest) {
		f.LagTime = f.At.Sub(oldest)
	}
	slices.SortFunc(behind, func(a, b KeyLag) int {
		if c := cmp.Compare(b.Lag, a.Lag); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if len(behind) > top {
		behind = slices.Clip(behind[:top])
	}
	f.Top = behind
}
