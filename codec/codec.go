package codec

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Manifest names this snapshot format on the journal row that carries it.
// A future format gets a new manifest, and readers dispatch on it.
const Manifest = "outbox-offsets"

// Field sizes of the format, in bytes.
const (
	countSize    = 4 // u32 count
	keyLenSize   = 4 // u32 key_len
	valueSize    = 8 // u64 value
	minEntrySize = keyLenSize + valueSize
)

// limits are the bounds the encoder enforces. The format fixes them; tests
// lower them to reach the error paths without gigabytes of keys.
type limits struct {
	maxKeys   uint64 // most entries the u32 count can announce
	maxKeyLen uint64 // longest key the u32 key_len can announce
	maxSize   uint64 // largest encoding a []byte can hold
}

var formatLimits = limits{
	maxKeys:   math.MaxUint32,
	maxKeyLen: math.MaxUint32,
	maxSize:   math.MaxInt,
}

// Encode returns the snapshot of offsets, keys in ascending byte order, so
// equal maps give equal bytes. A nil or empty map encodes as a zero count
// (four zero bytes).
//
// Encode refuses, with an *EncodeError and before writing anything, a map
// that the original decoder could not read: a key that is not valid UTF-8
// (ErrInvalidUTF8), a key longer than 2^32−1 bytes (ErrKeyTooLong), or more
// than 2^32−1 keys (ErrTooManyKeys).
//
// Encode allocates twice whatever the number of keys: the output, sized
// exactly, and the slice of keys it sorts.
func Encode(offsets map[string]uint64) ([]byte, error) {
	return formatLimits.appendEncode(nil, offsets)
}

// AppendEncode appends the snapshot of offsets to dst and returns the
// extended slice, growing dst at most once. It encodes and fails exactly as
// Encode does; on failure it returns dst unchanged.
func AppendEncode(dst []byte, offsets map[string]uint64) ([]byte, error) {
	return formatLimits.appendEncode(dst, offsets)
}

// EncodedLen returns the exact length of the snapshot of offsets, or the
// error Encode would return. It does not allocate unless it fails.
func EncodedLen(offsets map[string]uint64) (int, error) {
	_, n, err := formatLimits.measure(offsets, false)
	return n, err
}

func (l limits) appendEncode(dst []byte, offsets map[string]uint64) ([]byte, error) {
	return l.appendEncodeIndexed(dst, offsets, nil)
}

// appendEncodeIndexed is appendEncode that also records, in index when it
// is not nil, the position of every key's value in the returned slice.
func (l limits) appendEncodeIndexed(dst []byte, offsets map[string]uint64, index map[string]int) ([]byte, error) {
	keys, n, err := l.measure(offsets, true)
	if err != nil {
		return dst, err
	}
	slices.Sort(keys)

	if dst == nil {
		dst = make([]byte, 0, n)
	} else {
		dst = slices.Grow(dst, n)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(keys)))
	for _, k := range keys {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(k)))
		dst = append(dst, k...)
		if index != nil {
			index[k] = len(dst)
		}
		dst = binary.LittleEndian.AppendUint64(dst, offsets[k])
	}
	return dst, nil
}

// measure checks offsets against l and returns its exact encoded length.
// With collect set it also returns the keys, unsorted. When several keys are
// at fault, the error names the smallest, so it is the same on every run.
func (l limits) measure(offsets map[string]uint64, collect bool) ([]string, int, error) {
	if uint64(len(offsets)) > l.maxKeys {
		return nil, 0, &EncodeError{Err: ErrTooManyKeys}
	}
	var keys []string
	if collect {
		keys = make([]string, 0, len(offsets))
	}
	var (
		size   = uint64(countSize) + uint64(len(offsets))*minEntrySize
		badKey string
		badErr error
	)
	for k := range offsets {
		// Saturate just past maxSize: no overflow, however many long keys.
		size = min(size+uint64(len(k)), l.maxSize+1)

		var err error
		switch {
		case uint64(len(k)) > l.maxKeyLen:
			err = ErrKeyTooLong
		case !utf8.ValidString(k):
			err = ErrInvalidUTF8
		}
		if err != nil && (badErr == nil || k < badKey) {
			badKey, badErr = k, err
		}
		if collect {
			keys = append(keys, k)
		}
	}
	if badErr != nil {
		return nil, 0, &EncodeError{Key: badKey, Err: badErr}
	}
	if size > l.maxSize {
		return nil, 0, &EncodeError{Err: ErrTooLarge}
	}
	return keys, int(size), nil
}

// Decode parses a snapshot into a new map. It accepts entries in any key
// order, as the original encoder wrote them in hash-map order. It is strict:
// a payload that is truncated, has trailing bytes, announces more entries
// than it can hold, repeats a key or has a key that is not valid UTF-8 is
// refused with a *DecodeError that matches ErrCorrupt and the specific
// sentinel, and says at which byte and entry the fault lies. Structural
// faults (truncation, trailing bytes, invalid UTF-8) are found in a first
// pass, so they are reported before a duplicate key.
//
// Decode never panics, whatever the input, and never allocates more than
// the input justifies: the count is checked against the payload's length
// before anything is allocated, and the map is sized by it. All keys of the
// returned map share one string allocation, so holding any key keeps every
// key's bytes alive. Decode does not retain payload.
func Decode(payload []byte) (map[string]uint64, error) {
	return decodeWith(payload, func(p []byte, valueOff int) uint64 {
		return binary.LittleEndian.Uint64(p[valueOff:])
	})
}

// decodeWith is Decode with each key mapped to value(payload, position of
// its u64 value) instead of the value itself: Decode and ParseSnapshot
// share the one strict reading.
func decodeWith[V any](payload []byte, value func(p []byte, valueOff int) V) (map[string]V, error) {
	if len(payload) < countSize {
		return nil, &DecodeError{Offset: 0, Entry: -1, Err: ErrTruncated}
	}
	count := binary.LittleEndian.Uint32(payload)
	if uint64(count) > uint64(len(payload)-countSize)/minEntrySize {
		return nil, &DecodeError{Offset: 0, Entry: -1, Count: count, Err: ErrCountTooLarge}
	}
	// From here count ≤ len(payload)/12, so int(count) is exact.
	keyBytes, err := validate(payload, count)
	if err != nil {
		return nil, err
	}

	// Copy every key into one buffer, allocated once and exactly, and slice
	// the keys out of it. A strings.Builder never changes bytes it holds,
	// so each String() result stays valid as the builder appends.
	var keys strings.Builder
	keys.Grow(keyBytes)
	m := make(map[string]V, count)
	off := countSize
	for i := range int(count) {
		n := int(binary.LittleEndian.Uint32(payload[off:]))
		keyOff := off + keyLenSize
		start := keys.Len()
		keys.Write(payload[keyOff : keyOff+n])
		k := keys.String()[start:]
		m[k] = value(payload, keyOff+n)
		if len(m) != i+1 {
			return nil, &DecodeError{
				Offset: keyOff, Entry: i, Count: count,
				Key: strings.Clone(k), Err: ErrDuplicateKey,
			}
		}
		off = keyOff + n + valueSize
	}
	return m, nil
}

// validate walks the count entries after the header without allocating and
// checks that each is complete with a valid UTF-8 key, and that nothing
// follows the last. It returns the total length of the keys.
func validate(payload []byte, count uint32) (int, error) {
	fault := func(off, entry int, err error) *DecodeError {
		return &DecodeError{Offset: off, Entry: entry, Count: count, Err: err}
	}
	off := countSize
	total := 0
	for i := range int(count) {
		if len(payload)-off < keyLenSize {
			return 0, fault(off, i, ErrTruncated)
		}
		n := binary.LittleEndian.Uint32(payload[off:])
		off += keyLenSize
		if uint64(n) > uint64(len(payload)-off) {
			return 0, fault(off, i, ErrTruncated)
		}
		key := payload[off : off+int(n)]
		if !utf8.Valid(key) {
			e := fault(off, i, ErrInvalidUTF8)
			e.Key = string(key)
			return 0, e
		}
		off += int(n)
		total += int(n)
		if len(payload)-off < valueSize {
			return 0, fault(off, i, ErrTruncated)
		}
		off += valueSize
	}
	if off != len(payload) {
		return 0, fault(off, -1, ErrTrailingBytes)
	}
	return total, nil
}
