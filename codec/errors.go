package codec

import (
	"errors"
	"fmt"
	"strings"
)

// ErrCorrupt is matched (with errors.Is) by every error Decode returns,
// whatever the fault. Each such error also matches exactly one of the
// specific decode sentinels below.
var ErrCorrupt = errors.New("codec: corrupt offset snapshot")

// Decode faults. Decode reports each as a *DecodeError that matches both the
// specific sentinel and ErrCorrupt.
var (
	// ErrTruncated: the payload ends inside the count header or inside an
	// entry.
	ErrTruncated = errors.New("codec: payload truncated")

	// ErrTrailingBytes: bytes follow the last entry that the count
	// announces.
	ErrTrailingBytes = errors.New("codec: trailing bytes after the last entry")

	// ErrCountTooLarge: the count announces more entries than the rest of
	// the payload can hold at the smallest entry size (12 bytes: key_len and
	// value around an empty key). A payload cut short is reported this way,
	// rather than as ErrTruncated, when what is left cannot hold the
	// announced entries.
	ErrCountTooLarge = errors.New("codec: entry count larger than the payload can hold")

	// ErrDuplicateKey: two entries carry the same key.
	ErrDuplicateKey = errors.New("codec: duplicate key")
)

// Delta decode faults (ParseDelta and DecodeDelta), besides the ones above,
// which a delta can have too. Each comes in a *DecodeError whose Delta is
// true.
var (
	// ErrNotDelta: the payload does not start as a delta does (a full
	// snapshot, or anything else).
	ErrNotDelta = errors.New("codec: not a delta")

	// ErrUnknownVersion: a delta of a version this package does not read.
	ErrUnknownVersion = errors.New("codec: unknown delta version")

	// ErrUnsorted: the keys of a delta's list are not in ascending byte
	// order, as every delta this package writes has them.
	ErrUnsorted = errors.New("codec: delta keys out of order")

	// ErrSetAndRemoved: a key both set and removed by one delta. Encoding
	// such a delta fails with it too, in an *EncodeError.
	ErrSetAndRemoved = errors.New("codec: key both set and removed")

	// ErrBadBase: a delta's Base or Root is 0, or its Root is above its
	// Base. Encoding such a delta fails with it too, in an *EncodeError.
	ErrBadBase = errors.New("codec: delta base out of range")
)

// ErrInvalidUTF8 reports a key that is not valid UTF-8. Decode reports it
// in a *DecodeError (matching ErrCorrupt too); Encode and AppendEncode report
// it in an *EncodeError, because the original decoder rejects the whole
// snapshot over one such key.
var ErrInvalidUTF8 = errors.New("codec: key is not valid UTF-8")

// Encode faults. The encoders report each as an *EncodeError; none matches
// ErrCorrupt.
var (
	// ErrTooManyKeys: the map has more entries than the u32 count can
	// announce (2^32−1).
	ErrTooManyKeys = errors.New("codec: more than 2^32-1 keys")

	// ErrKeyTooLong: a key is longer than the u32 key_len can announce
	// (2^32−1 bytes).
	ErrKeyTooLong = errors.New("codec: key longer than 2^32-1 bytes")

	// ErrTooLarge: the encoding would not fit in an int, which only a
	// 32-bit platform can reach.
	ErrTooLarge = errors.New("codec: encoded snapshot larger than the address space")
)

// DecodeError reports where Decode found a payload at fault. It matches
// ErrCorrupt and, through Unwrap, its Err.
type DecodeError struct {
	// Delta is true for a fault of a delta payload (ParseDelta,
	// DecodeDelta), false for one of a full snapshot (Decode).
	Delta bool

	// Offset is the byte offset, from the start of the payload, of the
	// field at fault: the count header for ErrCountTooLarge, the field the
	// payload ends in for ErrTruncated, the first extra byte for
	// ErrTrailingBytes, the key's first byte for ErrInvalidUTF8 and
	// ErrDuplicateKey.
	Offset int

	// Entry is the zero-based index of the entry at fault, or -1 when the
	// fault lies outside every entry (the count header, trailing bytes).
	Entry int

	// Count is the entry count read from the header, or 0 when the header
	// itself is truncated.
	Count uint32

	// Key is the key at fault for ErrInvalidUTF8, ErrDuplicateKey,
	// ErrUnsorted and ErrSetAndRemoved, and empty otherwise.
	Key string

	// Err is the specific sentinel: ErrTruncated, ErrTrailingBytes,
	// ErrCountTooLarge, ErrDuplicateKey or ErrInvalidUTF8; for a delta
	// also ErrNotDelta, ErrUnknownVersion, ErrUnsorted, ErrSetAndRemoved
	// or ErrBadBase.
	Err error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	what := "snapshot"
	if e.Delta {
		what = "delta"
	}
	fmt.Fprintf(&b, "codec: corrupt offset %s at byte %d", what, e.Offset)
	if e.Entry >= 0 {
		fmt.Fprintf(&b, " (entry %d of %d)", e.Entry, e.Count)
	}
	b.WriteString(": ")
	b.WriteString(reason(e.Err))
	switch e.Err {
	case ErrCountTooLarge:
		fmt.Fprintf(&b, " (count %d)", e.Count)
	case ErrInvalidUTF8, ErrDuplicateKey, ErrUnsorted, ErrSetAndRemoved:
		b.WriteString(": ")
		b.WriteString(quoteKey(e.Key))
	}
	return b.String()
}

// Is reports whether target is ErrCorrupt.
func (e *DecodeError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the specific sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError reports a map that Encode and AppendEncode refuse to encode
// because the original decoder could not read the result. It matches its
// Err through Unwrap.
type EncodeError struct {
	// Key is the key at fault for ErrInvalidUTF8 and ErrKeyTooLong. When
	// several keys are at fault it is the smallest, so the error is the same
	// on every run. Empty for the other errors.
	Key string

	// Err is the specific sentinel: ErrInvalidUTF8, ErrKeyTooLong,
	// ErrTooManyKeys or ErrTooLarge.
	Err error
}

func (e *EncodeError) Error() string {
	switch e.Err {
	case ErrInvalidUTF8:
		return "codec: encode key " + quoteKey(e.Key) + ": " + reason(e.Err)
	case ErrKeyTooLong:
		return fmt.Sprintf("codec: encode key %s (%d bytes): %s", quoteKey(e.Key), len(e.Key), reason(e.Err))
	case ErrSetAndRemoved:
		return "codec: encode delta key " + quoteKey(e.Key) + ": " + reason(e.Err)
	}
	return "codec: encode: " + reason(e.Err)
}

// Unwrap returns the specific sentinel.
func (e *EncodeError) Unwrap() error { return e.Err }

// reason is a sentinel's message without the package prefix, for use inside
// a message that already has it.
func reason(err error) string {
	if err == nil {
		return "unknown fault"
	}
	return strings.TrimPrefix(err.Error(), "codec: ")
}

// maxQuotedKey bounds how much of a key an error message shows.
const maxQuotedKey = 64

// quoteKey quotes k for an error message, shortened to maxQuotedKey bytes.
func quoteKey(k string) string {
	if len(k) <= maxQuotedKey {
		return fmt.Sprintf("%q", k)
	}
	return fmt.Sprintf("%q...", k[:maxQuotedKey])
}
