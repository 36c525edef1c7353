package codec

import (
	"encoding/binary"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"
)

// Snapshot is an encoded snapshot indexed by key: its payload in the
// format of this package, and the byte position of every key's value, so
// that reading or changing one key costs one map lookup whatever the size
// of the snapshot.
//
// A Snapshot changes only through an [Edit], which works on a copy and
// becomes the Snapshot's content only when committed: an edit that is
// abandoned (a write that failed) leaves the Snapshot as it was. The
// Snapshot keeps two buffers and an edit writes into the one not current,
// so that an edit of values already present allocates nothing.
//
// A Snapshot's entries are in any order: [NewSnapshot] writes them sorted,
// as [Encode] does, and an edit appends new keys at the end rather than
// sorting again. [Decode] reads both.
//
// Concurrency: the read methods (Payload, Len, Get, All, Map) and the
// building of an edit (Lookup, Put, Set, Delete, Payload of the Edit) only
// read the Snapshot and may run concurrently with each other. Commit
// changes it and must run alone. Only one edit is open at a time: Edit
// abandons the previous one.
type Snapshot struct {
	payload []byte
	index   map[string]int // key → position of its u64 value in payload
	spare   []byte         // the other buffer, reused by the next edit
	edit    Edit
}

// NewSnapshot encodes offsets as [Encode] does, keys sorted, and indexes
// the result. It fails as Encode does.
func NewSnapshot(offsets map[string]uint64) (*Snapshot, error) {
	index := make(map[string]int, len(offsets))
	payload, err := formatLimits.appendEncodeIndexed(nil, offsets, index)
	if err != nil {
		return nil, err
	}
	return &Snapshot{payload: payload, index: index}, nil
}

// ParseSnapshot reads payload as [Decode] does, as strictly and with the
// same errors, and returns it indexed. The Snapshot holds a copy: payload
// is not retained. All keys share one string allocation, as with Decode.
func ParseSnapshot(payload []byte) (*Snapshot, error) {
	index, err := decodeWith(payload, func(_ []byte, valueOff int) int { return valueOff })
	if err != nil {
		return nil, err
	}
	return &Snapshot{payload: slices.Clone(payload), index: index}, nil
}

// Payload returns the encoded snapshot. The caller must not change it. It
// stays valid until the second Commit after the call: the first one makes
// it the buffer that the next edit overwrites.
func (s *Snapshot) Payload() []byte { return s.payload }

// Len returns the number of keys.
func (s *Snapshot) Len() int { return len(s.index) }

// Get returns the value of key, and whether the snapshot holds it.
func (s *Snapshot) Get(key string) (uint64, bool) {
	pos, ok := s.index[key]
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint64(s.payload[pos:]), true
}

// All yields every key and its value, in no particular order.
func (s *Snapshot) All() iter.Seq2[string, uint64] {
	return func(yield func(string, uint64) bool) {
		for k, pos := range s.index {
			if !yield(k, binary.LittleEndian.Uint64(s.payload[pos:])) {
				return
			}
		}
	}
}

// Map returns the snapshot as a new map, the same as Decode(s.Payload()).
// It reads the payload front to back, as Decode does, and its keys share
// one string allocation.
func (s *Snapshot) Map() map[string]uint64 {
	m := make(map[string]uint64, len(s.index))
	var keys strings.Builder
	keys.Grow(len(s.payload) - countSize - len(s.index)*minEntrySize)
	off := countSize
	for range len(s.index) {
		n := int(binary.LittleEndian.Uint32(s.payload[off:]))
		keyOff := off + keyLenSize
		start := keys.Len()
		keys.Write(s.payload[keyOff : keyOff+n])
		m[keys.String()[start:]] = binary.LittleEndian.Uint64(s.payload[keyOff+n:])
		off = keyOff + n + valueSize
	}
	return m
}

// Edit starts a change of the snapshot on a copy of its payload, and
// abandons any edit started before and not committed. The returned Edit
// belongs to s and is reused by the next call.
func (s *Snapshot) Edit() *Edit {
	e := &s.edit
	buf := s.spare
	if e.buf != nil { // an abandoned edit's buffer: the spare, perhaps grown
		buf = e.buf
	}
	clear(e.added)
	clear(e.dropped)
	*e = Edit{
		s:       s,
		buf:     append(buf[:0], s.payload...),
		count:   binary.LittleEndian.Uint32(s.payload),
		added:   e.added,
		dropped: e.dropped,
		cuts:    e.cuts[:0],
	}
	s.spare = nil
	return e
}

// Slot names the value of one key within an open Edit, as Lookup found
// it, so that Put changes it without a second lookup. A Slot is valid
// until the edit's next Delete.
type Slot struct{ pos int }

// Edit is a change of a [Snapshot] being built: values patched in place,
// new keys appended, deleted keys removed when the edit is sealed. Nothing
// of it reaches the Snapshot before [Edit.Commit].
type Edit struct {
	s       *Snapshot
	buf     []byte
	count   uint32         // entries in buf, those to drop included
	added   map[string]int // keys new in this edit → value position in buf
	dropped map[string]int // keys to remove → value position in buf
	cuts    []cut          // byte ranges removed by sealing, ascending
	changed bool
	sealed  bool
}

// cut is a byte range [start, end) that sealing removed from the buffer;
// sum is the length of this cut and every cut before it.
type cut struct{ start, end, sum int }

// Lookup returns the value of key as the edit stands, a Slot to change
// it, and whether the edit holds key.
func (e *Edit) Lookup(key string) (uint64, Slot, bool) {
	pos, ok := e.find(key)
	if !ok {
		return 0, Slot{}, false
	}
	return binary.LittleEndian.Uint64(e.buf[pos:]), Slot{pos}, true
}

// find returns the value position of a key the edit holds.
func (e *Edit) find(key string) (int, bool) {
	if pos, ok := e.s.index[key]; ok {
		if len(e.dropped) > 0 {
			if _, gone := e.dropped[key]; gone {
				return 0, false
			}
		}
		return pos, true
	}
	if len(e.added) > 0 {
		pos, ok := e.added[key]
		return pos, ok
	}
	return 0, false
}

// Put sets the value at slot, which Lookup returned for this edit.
func (e *Edit) Put(slot Slot, value uint64) {
	e.mutable()
	if slot.pos < countSize+keyLenSize {
		panic("codec: Edit.Put with a Slot that Lookup did not return")
	}
	if binary.LittleEndian.Uint64(e.buf[slot.pos:]) != value {
		binary.LittleEndian.PutUint64(e.buf[slot.pos:], value)
		e.changed = true
	}
}

// Len returns the number of keys the edit holds.
func (e *Edit) Len() int { return int(e.count) - len(e.dropped) }

// PutAll walks the entries of the edit in payload order and, for each key
// that offsets holds, sets the value from offsets where replace(old, new)
// is true. It returns how many keys of offsets the edit holds; those it
// lacks are left to Set. It reads the payload front to back and looks
// each key up in offsets, which for a change of most keys is several
// times faster than a Lookup per key; its cost is that of the whole
// snapshot, so use it when offsets names a good part of it.
func (e *Edit) PutAll(offsets map[string]uint64, replace func(old, new uint64) bool) (held int) {
	e.mutable()
	off := countSize
	for range int(e.count) {
		n := int(binary.LittleEndian.Uint32(e.buf[off:]))
		key := e.buf[off+keyLenSize : off+keyLenSize+n]
		pos := off + keyLenSize + n
		off = pos + valueSize
		v, ok := offsets[string(key)]
		if !ok {
			continue
		}
		if len(e.dropped) > 0 {
			if _, gone := e.dropped[string(key)]; gone {
				continue
			}
		}
		held++
		if old := binary.LittleEndian.Uint64(e.buf[pos:]); old != v && replace(old, v) {
			binary.LittleEndian.PutUint64(e.buf[pos:], v)
			e.changed = true
		}
	}
	return held
}

// Set sets key to value, appending key when the edit does not hold it. A
// new key is refused, with an *EncodeError and the edit unchanged, when
// Encode would refuse it: not valid UTF-8 (ErrInvalidUTF8), longer than
// 2^32−1 bytes (ErrKeyTooLong), or one key too many (ErrTooManyKeys).
func (e *Edit) Set(key string, value uint64) error {
	return e.set(formatLimits, key, value)
}

func (e *Edit) set(l limits, key string, value uint64) error {
	e.mutable()
	if pos, ok := e.find(key); ok {
		e.Put(Slot{pos}, value)
		return nil
	}
	if pos, ok := e.dropped[key]; ok { // deleted in this edit: revive it
		delete(e.dropped, key)
		if _, base := e.s.index[key]; !base {
			e.added[key] = pos
		}
		binary.LittleEndian.PutUint64(e.buf[pos:], value)
		e.changed = true
		return nil
	}
	switch {
	case uint64(len(key)) > l.maxKeyLen:
		return &EncodeError{Key: key, Err: ErrKeyTooLong}
	case !utf8.ValidString(key):
		return &EncodeError{Key: key, Err: ErrInvalidUTF8}
	case uint64(e.count) >= l.maxKeys:
		return &EncodeError{Err: ErrTooManyKeys}
	case uint64(len(e.buf))+uint64(minEntrySize+len(key)) > l.maxSize:
		return &EncodeError{Err: ErrTooLarge}
	}
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(key)))
	e.buf = append(e.buf, key...)
	if e.added == nil {
		e.added = map[string]int{}
	}
	e.added[key] = len(e.buf)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, value)
	e.count++
	binary.LittleEndian.PutUint32(e.buf, e.count)
	e.changed = true
	return nil
}

// Delete removes key, and reports whether the edit held it.
func (e *Edit) Delete(key string) bool {
	e.mutable()
	pos, ok := e.find(key)
	if !ok {
		return false
	}
	if e.dropped == nil {
		e.dropped = map[string]int{}
	}
	e.dropped[key] = pos
	delete(e.added, key)
	e.changed = true
	return true
}

// Changed reports whether the edit differs from the snapshot it started
// from: a value changed, a key added or deleted.
func (e *Edit) Changed() bool { return e.changed }

// Payload seals the edit and returns the edited snapshot: what Commit will
// make current. The entries the edit deleted are removed from it here. The
// caller must not change it; it stays valid until the next Edit of the
// Snapshot that is not preceded by this edit's Commit, or until the second
// Commit after it. No change can be made to a sealed edit.
func (e *Edit) Payload() []byte {
	if !e.sealed {
		e.seal()
	}
	return e.buf
}

func (e *Edit) seal() {
	e.sealed = true
	if len(e.dropped) == 0 {
		return
	}
	for key, pos := range e.dropped {
		e.cuts = append(e.cuts, cut{start: pos - len(key) - keyLenSize, end: pos + valueSize})
	}
	slices.SortFunc(e.cuts, func(a, b cut) int { return a.start - b.start })
	sum := 0
	for i := range e.cuts {
		sum += e.cuts[i].end - e.cuts[i].start
		e.cuts[i].sum = sum
	}
	w := e.cuts[0].start
	for i, c := range e.cuts {
		next := len(e.buf)
		if i+1 < len(e.cuts) {
			next = e.cuts[i+1].start
		}
		w += copy(e.buf[w:], e.buf[c.end:next])
	}
	e.buf = e.buf[:w]
	e.count -= uint32(len(e.dropped))
	binary.LittleEndian.PutUint32(e.buf, e.count)
}

// shift returns how far sealing moved the byte at pos, which no cut
// covers: the length of the cuts before it.
func (e *Edit) shift(pos int) int {
	i, _ := slices.BinarySearchFunc(e.cuts, pos, func(c cut, p int) int { return c.start - p })
	if i == 0 {
		return 0
	}
	return e.cuts[i-1].sum
}

// Commit seals the edit if it is not sealed yet and makes it the
// Snapshot's content. The buffer that was current becomes the one the
// next edit writes into. Commit of an edit that is not the Snapshot's
// open one (committed already, or abandoned by a later Edit) panics.
func (e *Edit) Commit() {
	s := e.s
	if s == nil || &s.edit != e || e.buf == nil {
		panic("codec: Commit of an edit that is not open")
	}
	if !e.sealed {
		e.seal()
	}
	if len(e.cuts) > 0 {
		for k, pos := range s.index {
			if _, gone := e.dropped[k]; gone {
				delete(s.index, k)
				continue
			}
			s.index[k] = pos - e.shift(pos)
		}
		for k, pos := range e.added {
			s.index[k] = pos - e.shift(pos)
		}
	} else {
		for k, pos := range e.added {
			s.index[k] = pos
		}
	}
	s.payload, s.spare = e.buf, s.payload
	e.buf = nil
	clear(e.added)
	clear(e.dropped)
	e.cuts = e.cuts[:0]
}

func (e *Edit) mutable() {
	if e.sealed || e.buf == nil {
		panic("codec: change of an edit that is sealed or not open")
	}
}
