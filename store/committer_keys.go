package store

import (
	"cmp"
	"slices"
	"strings"
)

// The per-key bookkeeping of a Committer: the committable offset of each
// key and the tracked sequence numbers not yet marked (the gaps).

// keyState is the progress of one key.
type keyState struct {
	key   string
	done  uint64 // committable: the highest marked seq below the lowest pending one
	top   uint64 // the highest seq ever marked
	dirty bool   // in committer.dirty
	// buf[lo:] are the tracked sequence numbers not yet marked, ascending.
	buf []pendingSeq
	lo  int
}

// pendingSeq is a tracked sequence number not yet marked, with the highest
// marked one between it and the next pending one (0 for none).
type pendingSeq struct {
	seq, above uint64
}

// newKey validates key and adds its entry. Runs under mu.
func (in *committer) newKey(key string) (*keyState, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	// A copy, so that the entry does not pin a larger buffer key may be
	// cut from.
	ks := &keyState{key: strings.Clone(key)}
	in.keys[ks.key] = ks
	return ks, nil
}

// mark records seq as done. It reports whether anything changed, and
// whether seq was a pending one.
func (ks *keyState) mark(seq uint64) (changed, completed bool) {
	live := ks.buf[ks.lo:]
	if len(live) == 0 || seq < live[0].seq {
		if seq <= ks.done {
			return false, false
		}
		ks.done = seq
		return true, false
	}
	i, found := slices.BinarySearchFunc(live, seq, cmpPending)
	if !found {
		// Above a pending seq: remembered in the gap it falls in.
		if seq <= live[i-1].above {
			return false, false
		}
		live[i-1].above = seq
		return true, false
	}
	hi := max(live[i].seq, live[i].above)
	if i > 0 {
		live[i-1].above = max(live[i-1].above, hi)
		copy(live[i:], live[i+1:])
		ks.buf = ks.buf[:len(ks.buf)-1]
	} else {
		ks.done = hi
		ks.lo++
	}
	ks.compact()
	return true, true
}

func cmpPending(p pendingSeq, seq uint64) int { return cmp.Compare(p.seq, seq) }

// track adds seq to the pending ones; false when it already is. seq is
// above every marked seq, so it splits no remembered gap.
func (ks *keyState) track(seq uint64) bool {
	live := ks.buf[ks.lo:]
	if n := len(live); n == 0 || live[n-1].seq < seq {
		ks.buf = append(ks.buf, pendingSeq{seq: seq})
		return true
	}
	i, found := slices.BinarySearchFunc(live, seq, cmpPending)
	if found {
		return false
	}
	ks.buf = slices.Insert(ks.buf, ks.lo+i, pendingSeq{seq: seq})
	return true
}

// Limits of the pending buffer of a key: an empty one keeps its array up to
// idlePendingCap entries (so that tracking in order allocates nothing), a
// larger one is released; one more than four times larger than its content
// is reallocated.
const (
	idlePendingCap   = 8
	shrinkPendingCap = 64
)

// compact keeps the pending buffer proportional to its content.
func (ks *keyState) compact() {
	n := len(ks.buf) - ks.lo
	switch {
	case n == 0:
		if cap(ks.buf) > idlePendingCap {
			ks.buf = nil
		} else {
			ks.buf = ks.buf[:0]
		}
		ks.lo = 0
	case cap(ks.buf) > shrinkPendingCap && n*4 < cap(ks.buf):
		ks.buf = append(make([]pendingSeq, 0, 2*n), ks.buf[ks.lo:]...)
		ks.lo = 0
	case ks.lo >= 32 && ks.lo*2 >= len(ks.buf):
		ks.buf = ks.buf[:copy(ks.buf, ks.buf[ks.lo:])]
		ks.lo = 0
	}
}
