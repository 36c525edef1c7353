package relay

import "math"

// unknownHead is the head of a stream that was listed, not reported by
// the feed: read it, whatever its position.
const unknownHead = math.MaxUint64

// stream is what the relay knows of a stream it follows.
type stream struct {
	// pos is the last sequence number handed to the sink; at first, the
	// stream's offset.
	pos uint64
	// seen is the highest sequence number known to hold nothing more to
	// publish: pos, or a head above it whose rows were deleted.
	seen uint64
	// head is the highest number reported since the stream was queued
	// (unknownHead when it was listed).
	head    uint64
	pending bool
}

// tracker holds the streams the relay follows and the queue of those
// with something to read, oldest first.
type tracker struct {
	follow  func(string) bool
	offsets map[string]uint64
	streams map[string]*stream
	ignored map[string]struct{} // streams Config.Follow refused
	queue   []string
	slab    []stream // where new streams are allocated, many at a time
}

func newTracker(offsets map[string]uint64, follow func(string) bool) *tracker {
	return &tracker{follow: follow, offsets: offsets, streams: map[string]*stream{}, ignored: map[string]struct{}{}}
}

// get returns the stream pid, made at its offset on first sight, or nil
// when the relay does not follow it.
func (t *tracker) get(pid string) *stream {
	if s := t.streams[pid]; s != nil {
		return s
	}
	if _, no := t.ignored[pid]; no {
		return nil
	}
	if t.follow != nil && !t.follow(pid) {
		t.ignored[pid] = struct{}{}
		return nil
	}
	if len(t.slab) == 0 {
		t.slab = make([]stream, 1024)
	}
	s := &t.slab[0]
	t.slab = t.slab[1:]
	off := t.offsets[pid]
	s.pos, s.seen = off, off
	t.streams[pid] = s
	return s
}

// moved records that pid has rows up to head and queues it when that is
// past what the relay has seen of it.
func (t *tracker) moved(pid string, head uint64) {
	s := t.get(pid)
	if s == nil || head <= s.seen {
		return
	}
	s.head = max(s.head, head)
	if !s.pending {
		s.pending = true
		t.queue = append(t.queue, pid)
	}
}

// done records that pid was read to its end: nothing live above pos, up
// to the head it was queued for.
func (t *tracker) done(pid string) {
	s := t.streams[pid]
	s.pending = false
	s.seen = s.pos
	if s.head != unknownHead {
		s.seen = max(s.seen, s.head)
	}
	s.head = 0
}
