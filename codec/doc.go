// Package codec encodes and decodes the offset snapshot of an outbox relay:
// the map from each source persistence id to the last sequence number the
// relay published, saved whole as the payload of one journal row whose
// manifest is [Manifest].
//
// # Format
//
// A snapshot is little-endian, with no header, version or checksum:
//
//	u32 count
//	count × {
//		u32 key_len
//		key_len bytes: the key, UTF-8
//		u64 value
//	}
//
// The smallest entry (an empty key) takes 12 bytes, so a payload of n bytes
// holds at most (n−4)/12 entries. The map {"order-1": 42} encodes as the 23
// bytes
//
//	01 00 00 00  07 00 00 00  6f 72 64 65 72 2d 31  2a 00 00 00 00 00 00 00
//
// A future format gets a new manifest rather than a version field, and
// readers dispatch on the manifest.
//
// # Encoding
//
// [Encode] and [AppendEncode] write the entries in ascending byte order of
// their keys, so equal maps give equal bytes. They refuse, with an
// [*EncodeError], a map the original decoder could not read: a key that is
// not valid UTF-8, a key longer than 2^32−1 bytes, more than 2^32−1 keys.
//
// # Decoding
//
// [Decode] accepts entries in any key order. It is strict where the
// original was lenient: truncated input, trailing bytes, invalid UTF-8, a
// duplicate key and a count larger than the payload can hold are each
// refused with a [*DecodeError] that gives the byte offset and entry index
// of the fault and matches both [ErrCorrupt] and the specific sentinel
// ([ErrTruncated], [ErrTrailingBytes], [ErrInvalidUTF8], [ErrDuplicateKey],
// [ErrCountTooLarge]) with errors.Is. Decode never panics, checks the count
// against the payload's length before allocating anything, and allocates
// one string for all the keys rather than one per key.
//
// Valid UTF-8 means the same here as in Go's unicode/utf8 and Rust's
// str::from_utf8: no surrogate halves, no overlong forms, nothing above
// U+10FFFF.
//
// # Deltas
//
// A store in incremental mode writes, between full snapshots, deltas: the
// change of the map since the row before, as the payload of a row whose
// manifest is [DeltaManifest]:
//
//	12 bytes  magic ff ff ff ff 04 00 00 00 ff 44 4c 54
//	u8        version (1)
//	u64       base: the sequence number of the row the delta applies to
//	u64       root: the sequence number of the full snapshot its chain starts from
//	u32       set count,     set count × { u32 key_len, key, u64 value }
//	u32       removed count, removed count × { u32 key_len, key }
//
// Keys are UTF-8 and ascending in each list, each once, and no key is both
// set and removed, so a delta has one encoding. The magic makes the full
// format's [Decode] refuse every delta whatever its length — read as a
// snapshot it announces 2^32−1 entries, the first with a key that is not
// UTF-8 — so no reader of full snapshots (the original Rust one, earlier
// versions of this package) ever loads a delta as the whole map.
// [EncodeDelta] writes a delta, [ParseDelta] reads one strictly, without a
// map, and [DecodeDelta] into a [Delta]; faults are [*DecodeError]s with
// Delta set. Only Go writes deltas: the original format's readers read an
// outbox only while it is written in full mode.
//
// # Compatibility
//
// The format is byte-compatible with the original Rust implementation,
// atomr's JournalOffsetStore, so a Rust service and a Go service can read
// each other's offsets. The rule, which every change to this package must
// keep:
//
//   - every payload the original encoder produces, in any key order,
//     decodes here to the same map;
//   - every payload this package encodes decodes with the original's
//     decoder to the same map.
//
// Payloads the original encoder never produces (trailing bytes, duplicate
// keys, counts the payload cannot hold) are errors here, where the original
// ignored or trusted them. The golden vectors in testdata/*.hex are written
// by hand from the format above, not produced by this encoder, and the tests
// hold both directions of the rule against them.
package codec
