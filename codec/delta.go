package codec

import (
	"bytes"
	"encoding/binary"
	"iter"
	"maps"
	"slices"
	"unicode/utf8"
)

// DeltaManifest names the delta format on the journal row that carries
// it: a change of the offsets since the row before, written by a store in
// incremental mode between full snapshots (see "Deltas" in the package
// documentation).
const DeltaManifest = "outbox-offsets-delta"

// DeltaVersion is the version of the delta format this package writes and
// the only one it reads.
const DeltaVersion = 1

// deltaMagic starts every delta. Read as a full snapshot it is a count of
// 2^32−1 entries, which no payload below 48 GiB can hold, followed by an
// entry whose 4-byte key (0xff 'D' 'L' 'T') is not valid UTF-8: Decode
// refuses every delta, whatever its length, so no reader of full
// snapshots loads a delta as the whole map.
var deltaMagic = [12]byte{0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 0xff, 'D', 'L', 'T'}

// Sizes of the delta format's fixed parts, in bytes.
const (
	deltaHeaderSize = len(deltaMagic) + 1 + 8 + 8 // magic, version, base, root
	minRemovedSize  = keyLenSize                  // an empty removed key
)

// Delta is a change of an offset map, as one delta row carries it: the
// keys whose values are set (new keys, or changed values), the keys
// removed, and the rows it builds on.
type Delta struct {
	// Base is the sequence number of the row this delta applies to: the
	// row just before it in the stream. At least 1.
	Base uint64
	// Root is the sequence number of the full snapshot that the chain of
	// deltas this one belongs to starts from: 1 ≤ Root ≤ Base. A reader
	// that cannot read the chain in one step reads from Root to the delta.
	Root uint64
	// Set holds the keys set and their values.
	Set map[string]uint64
	// Removed holds the keys removed. A key may not be both set and
	// removed; repeating a removed key is allowed (it is written once).
	Removed []string
}

// EncodeDelta returns the delta payload of d. Set and removed keys are
// written in ascending byte order, each once, so equal deltas give equal
// bytes. It refuses, with an *EncodeError, a key that is not valid UTF-8
// (ErrInvalidUTF8) or longer than 2^32−1 bytes (ErrKeyTooLong), more than
// 2^32−1 set or removed keys (ErrTooManyKeys), a key both set and removed
// (ErrSetAndRemoved) and a Base or Root out of order (ErrBadBase).
func EncodeDelta(d Delta) ([]byte, error) { return AppendEncodeDelta(nil, d) }

// AppendEncodeDelta appends the delta payload of d to dst, growing it at
// most once, and returns the extended slice. It fails as EncodeDelta does;
// on failure it returns dst unchanged.
func AppendEncodeDelta(dst []byte, d Delta) ([]byte, error) {
	return formatLimits.appendEncodeDelta(dst, d)
}

func (l limits) appendEncodeDelta(dst []byte, d Delta) ([]byte, error) {
	if d.Base == 0 || d.Root == 0 || d.Root > d.Base {
		return dst, &EncodeError{Err: ErrBadBase}
	}
	set, setSize, err := l.measure(d.Set, true)
	if err != nil {
		return dst, err
	}
	removed := slices.Clone(d.Removed)
	slices.Sort(removed)
	removed = slices.Compact(removed)
	if uint64(len(removed)) > l.maxKeys {
		return dst, &EncodeError{Err: ErrTooManyKeys}
	}
	size := uint64(deltaHeaderSize) + uint64(setSize) + countSize
	for _, k := range removed {
		switch {
		case uint64(len(k)) > l.maxKeyLen:
			return dst, &EncodeError{Key: k, Err: ErrKeyTooLong}
		case !utf8.ValidString(k):
			return dst, &EncodeError{Key: k, Err: ErrInvalidUTF8}
		}
		if _, both := d.Set[k]; both {
			return dst, &EncodeError{Key: k, Err: ErrSetAndRemoved}
		}
		size = min(size+keyLenSize+uint64(len(k)), l.maxSize+1)
	}
	if size > l.maxSize {
		return dst, &EncodeError{Err: ErrTooLarge}
	}
	slices.Sort(set)

	dst = slices.Grow(dst, int(size))
	dst = append(dst, deltaMagic[:]...)
	dst = append(dst, DeltaVersion)
	dst = binary.LittleEndian.AppendUint64(dst, d.Base)
	dst = binary.LittleEndian.AppendUint64(dst, d.Root)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(set)))
	for _, k := range set {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(k)))
		dst = append(dst, k...)
		dst = binary.LittleEndian.AppendUint64(dst, d.Set[k])
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(removed)))
	for _, k := range removed {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(k)))
		dst = append(dst, k...)
	}
	return dst, nil
}

// DeltaLen returns the exact length of the delta payload of a delta with
// the given keys set and removed (each removed key once, none also set),
// without encoding it: what a writer weighs against the full snapshot.
// Either sequence may be nil, for none.
func DeltaLen(setKeys, removedKeys iter.Seq[string]) int {
	n := deltaHeaderSize + 2*countSize
	if setKeys != nil {
		for k := range setKeys {
			n += minEntrySize + len(k)
		}
	}
	if removedKeys != nil {
		for k := range removedKeys {
			n += minRemovedSize + len(k)
		}
	}
	return n
}

// IsDelta reports whether payload starts as a delta does. It does not
// validate the rest: ParseDelta does.
func IsDelta(payload []byte) bool {
	return len(payload) >= len(deltaMagic) && [12]byte(payload[:len(deltaMagic)]) == deltaMagic
}

// DeltaView is a delta payload that was validated but not copied into
// maps: its keys are slices of one string holding the payload's bytes, so
// applying a delta costs no allocation per key. Holding any key keeps the
// whole string alive.
type DeltaView struct {
	base, root uint64
	data       string // the payload
	nset, nrem int
	setOff     int // first set entry
	remOff     int // first removed entry
}

// ParseDelta validates a delta payload strictly and returns a view of it.
// It never panics and allocates one copy of the payload, whatever it
// holds. A payload at fault is refused with a *DecodeError (Delta set)
// that matches ErrCorrupt and the specific sentinel: ErrNotDelta (it does
// not start as a delta), ErrUnknownVersion, ErrBadBase (a Base or Root of
// 0, or a Root above the Base), ErrTruncated, ErrCountTooLarge,
// ErrTrailingBytes, ErrInvalidUTF8, ErrUnsorted (keys not in ascending
// byte order), ErrDuplicateKey (a key twice in a list) or
// ErrSetAndRemoved (a key in both lists).
func ParseDelta(payload []byte) (*DeltaView, error) {
	fault := func(off, entry int, count uint32, err error) *DecodeError {
		return &DecodeError{Delta: true, Offset: off, Entry: entry, Count: count, Err: err}
	}
	if !IsDelta(payload) {
		if len(payload) < len(deltaMagic) && string(payload) == string(deltaMagic[:len(payload)]) {
			return nil, fault(0, -1, 0, ErrTruncated)
		}
		return nil, fault(0, -1, 0, ErrNotDelta)
	}
	if len(payload) < deltaHeaderSize {
		return nil, fault(len(payload), -1, 0, ErrTruncated)
	}
	if v := payload[len(deltaMagic)]; v != DeltaVersion {
		return nil, fault(len(deltaMagic), -1, 0, ErrUnknownVersion)
	}
	d := &DeltaView{
		base: binary.LittleEndian.Uint64(payload[len(deltaMagic)+1:]),
		root: binary.LittleEndian.Uint64(payload[len(deltaMagic)+9:]),
	}
	if d.base == 0 || d.root == 0 || d.root > d.base {
		return nil, fault(len(deltaMagic)+1, -1, 0, ErrBadBase)
	}
	off := deltaHeaderSize
	// The set list, then the removed list: each a u32 count and entries in
	// ascending key order. setCur walks the set list beside the removed
	// one, so that a key in both is found in one pass.
	setCur, setLeft := 0, 0
	for list, minSize := range []int{minEntrySize, minRemovedSize} {
		if len(payload)-off < countSize {
			return nil, fault(off, -1, 0, ErrTruncated)
		}
		count := binary.LittleEndian.Uint32(payload[off:])
		if uint64(count) > uint64(len(payload)-off-countSize)/uint64(minSize) {
			return nil, fault(off, -1, count, ErrCountTooLarge)
		}
		off += countSize
		if list == 0 {
			d.nset, d.setOff = int(count), off
			setCur, setLeft = off, int(count)
		} else {
			d.nrem, d.remOff = int(count), off
		}
		var prev []byte
		for i := range int(count) {
			if len(payload)-off < keyLenSize {
				return nil, fault(off, i, count, ErrTruncated)
			}
			n := binary.LittleEndian.Uint32(payload[off:])
			off += keyLenSize
			if uint64(n) > uint64(len(payload)-off) {
				return nil, fault(off, i, count, ErrTruncated)
			}
			key := payload[off : off+int(n)]
			keyFault := func(err error) *DecodeError {
				e := fault(off, i, count, err)
				e.Key = string(key)
				return e
			}
			if !utf8.Valid(key) {
				return nil, keyFault(ErrInvalidUTF8)
			}
			if i > 0 {
				if c := bytes.Compare(prev, key); c == 0 {
					return nil, keyFault(ErrDuplicateKey)
				} else if c > 0 {
					return nil, keyFault(ErrUnsorted)
				}
			}
			prev = key
			if list == 1 {
				// Advance the set cursor past the keys below this one.
				for ; setLeft > 0; setLeft-- {
					m := int(binary.LittleEndian.Uint32(payload[setCur:]))
					setKey := payload[setCur+keyLenSize : setCur+keyLenSize+m]
					c := bytes.Compare(setKey, key)
					if c == 0 {
						return nil, keyFault(ErrSetAndRemoved)
					}
					if c > 0 {
						break
					}
					setCur += keyLenSize + m + valueSize
				}
			}
			off += int(n)
			if list == 0 {
				if len(payload)-off < valueSize {
					return nil, fault(off, i, count, ErrTruncated)
				}
				off += valueSize
			}
		}
	}
	if off != len(payload) {
		return nil, fault(off, -1, 0, ErrTrailingBytes)
	}
	d.data = string(payload)
	return d, nil
}

// Base returns the sequence number of the row the delta applies to.
func (d *DeltaView) Base() uint64 { return d.base }

// Root returns the sequence number of the full snapshot its chain starts
// from.
func (d *DeltaView) Root() uint64 { return d.root }

// SetLen returns the number of keys set; RemovedLen the number removed.
func (d *DeltaView) SetLen() int { return d.nset }

// RemovedLen returns the number of keys removed.
func (d *DeltaView) RemovedLen() int { return d.nrem }

// Set yields the keys set and their values, in ascending key order.
func (d *DeltaView) Set() iter.Seq2[string, uint64] {
	return func(yield func(string, uint64) bool) {
		off := d.setOff
		for range d.nset {
			n := int(le32(d.data[off:]))
			key := d.data[off+keyLenSize : off+keyLenSize+n]
			off += keyLenSize + n
			v := le64(d.data[off:])
			off += valueSize
			if !yield(key, v) {
				return
			}
		}
	}
}

// Removed yields the keys removed, in ascending order.
func (d *DeltaView) Removed() iter.Seq[string] {
	return func(yield func(string) bool) {
		off := d.remOff
		for range d.nrem {
			n := int(le32(d.data[off:]))
			key := d.data[off+keyLenSize : off+keyLenSize+n]
			off += keyLenSize + n
			if !yield(key) {
				return
			}
		}
	}
}

// Delta returns the delta as a Delta of new maps and slices.
func (d *DeltaView) Delta() Delta {
	out := Delta{Base: d.base, Root: d.root, Set: make(map[string]uint64, d.nset)}
	maps.Insert(out.Set, d.Set())
	if d.nrem > 0 {
		out.Removed = slices.Collect(d.Removed())
	}
	return out
}

// DecodeDelta parses a delta payload as ParseDelta does and returns it as
// a Delta.
func DecodeDelta(payload []byte) (Delta, error) {
	d, err := ParseDelta(payload)
	if err != nil {
		return Delta{}, err
	}
	return d.Delta(), nil
}

// le32 and le64 read little-endian numbers from the start of s, as
// binary.LittleEndian does from a []byte, without converting s.
func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(le32(s)) | uint64(le32(s[4:]))<<32
}
