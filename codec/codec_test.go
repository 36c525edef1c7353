package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
)

// golden lists the hand-written vectors in testdata. Decoding file gives
// want; encoding want gives sorted (file itself when sorted is empty).
var golden = []struct {
	file   string
	sorted string
	want   map[string]uint64
}{
	{file: "empty.hex", want: map[string]uint64{}},
	{file: "one_key.hex", want: map[string]uint64{"order-1": 42}},
	{
		file:   "unsorted.hex",
		sorted: "sorted.hex",
		want:   map[string]uint64{"order-12": 300, "order-2": 65536, "payment-9": 7},
	},
	{
		file: "sorted.hex",
		want: map[string]uint64{"order-12": 300, "order-2": 65536, "payment-9": 7},
	},
	{file: "utf8_key.hex", want: map[string]uint64{"café-🦀": 1}},
	{file: "empty_key.hex", want: map[string]uint64{"": 5}},
	{file: "max_value.hex", want: map[string]uint64{"order-1": math.MaxUint64}},
	{
		file:   "mixed_unsorted.hex",
		sorted: "mixed_sorted.hex",
		want:   map[string]uint64{"": 1, "café-🦀": 0, "客户-7": math.MaxUint64},
	},
	{
		file: "mixed_sorted.hex",
		want: map[string]uint64{"": 1, "café-🦀": 0, "客户-7": math.MaxUint64},
	},
}

func TestGoldenDecode(t *testing.T) {
	t.Parallel()
	for _, tc := range golden {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			got, err := codec.Decode(readHex(t, tc.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got == nil || !maps.Equal(got, tc.want) {
				t.Fatalf("Decode = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestGoldenEncode(t *testing.T) {
	t.Parallel()
	for _, tc := range golden {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			name := tc.file
			if tc.sorted != "" {
				name = tc.sorted
			}
			want := readHex(t, name)

			got, err := codec.Encode(tc.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode = % x\nwant testdata/%s = % x", got, name, want)
			}
			if len(got) != cap(got) {
				t.Errorf("Encode: len %d, cap %d; want the buffer sized exactly", len(got), cap(got))
			}
			n, err := codec.EncodedLen(tc.want)
			if err != nil || n != len(want) {
				t.Errorf("EncodedLen = %d, %v; want %d, nil", n, err, len(want))
			}
			// The test's reference encoder must agree with the hand-written
			// vectors too, or the fuzz targets check against the wrong thing.
			if ref := refEncode(tc.want); !bytes.Equal(ref, want) {
				t.Errorf("refEncode = % x, want % x", ref, want)
			}
		})
	}
}

func TestEncodeNilMap(t *testing.T) {
	t.Parallel()
	got, err := codec.Encode(nil)
	if err != nil {
		t.Fatalf("Encode(nil): %v", err)
	}
	if want := readHex(t, "empty.hex"); !bytes.Equal(got, want) {
		t.Fatalf("Encode(nil) = % x, want % x", got, want)
	}
}

// decodeSentinels are the specific errors Decode reports, each also
// matching codec.ErrCorrupt.
var decodeSentinels = []error{
	codec.ErrTruncated,
	codec.ErrTrailingBytes,
	codec.ErrCountTooLarge,
	codec.ErrDuplicateKey,
	codec.ErrInvalidUTF8,
}

// checkDecodeError fails t unless err is a *codec.DecodeError at offset and
// entry that matches codec.ErrCorrupt and want, and no other sentinel.
func checkDecodeError(t *testing.T, err error, want error, offset, entry int) *codec.DecodeError {
	t.Helper()
	var de *codec.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v (%T), want a *codec.DecodeError", err, err)
	}
	if !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("errors.Is(%v, ErrCorrupt) = false", err)
	}
	for _, s := range decodeSentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%v, %v) = %t", err, s, got)
		}
	}
	if de.Offset != offset || de.Entry != entry {
		t.Errorf("at byte %d, entry %d; want byte %d, entry %d (%v)", de.Offset, de.Entry, offset, entry, err)
	}
	return de
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		want   error
		offset int
		entry  int
		key    string
	}{
		{file: "bad_empty.hex", want: codec.ErrTruncated, offset: 0, entry: -1},
		{file: "bad_short_count.hex", want: codec.ErrTruncated, offset: 0, entry: -1},
		{file: "bad_count.hex", want: codec.ErrCountTooLarge, offset: 0, entry: -1},
		{file: "bad_count_tail.hex", want: codec.ErrCountTooLarge, offset: 0, entry: -1},
		{file: "bad_count_two.hex", want: codec.ErrCountTooLarge, offset: 0, entry: -1},
		{file: "bad_key_len.hex", want: codec.ErrTruncated, offset: 8, entry: 0},
		{file: "bad_key_cut.hex", want: codec.ErrTruncated, offset: 20, entry: 1},
		{file: "bad_value_cut.hex", want: codec.ErrTruncated, offset: 9, entry: 0},
		{file: "bad_trailing.hex", want: codec.ErrTrailingBytes, offset: 23, entry: -1},
		{file: "bad_trailing_empty.hex", want: codec.ErrTrailingBytes, offset: 4, entry: -1},
		{file: "bad_duplicate.hex", want: codec.ErrDuplicateKey, offset: 21, entry: 1, key: "a"},
		{file: "bad_utf8.hex", want: codec.ErrInvalidUTF8, offset: 22, entry: 1, key: "caf\xe9"},
		{file: "bad_utf8_surrogate.hex", want: codec.ErrInvalidUTF8, offset: 8, entry: 0, key: "\xed\xa0\x80"},
		{file: "bad_utf8_overlong.hex", want: codec.ErrInvalidUTF8, offset: 8, entry: 0, key: "\xc0\xaf"},
		{file: "bad_utf8_cut.hex", want: codec.ErrInvalidUTF8, offset: 8, entry: 0, key: "caf\xc3"},
		{file: "bad_utf8_too_high.hex", want: codec.ErrInvalidUTF8, offset: 8, entry: 0, key: "\xf4\x90\x80\x80"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			p := readHex(t, tc.file)
			m, err := codec.Decode(p)
			if m != nil {
				t.Errorf("Decode returned a map (%d keys) with its error", len(m))
			}
			de := checkDecodeError(t, err, tc.want, tc.offset, tc.entry)
			if de.Key != tc.key {
				t.Errorf("Key = %q, want %q", de.Key, tc.key)
			}
			if de.Offset > len(p) {
				t.Errorf("Offset %d beyond the payload's %d bytes", de.Offset, len(p))
			}
		})
	}
}

// TestDecodeTruncatedAtEveryLength cuts every golden vector at every
// length and checks that the error names the field the cut falls in.
func TestDecodeTruncatedAtEveryLength(t *testing.T) {
	t.Parallel()
	for _, tc := range golden {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			full := readHex(t, tc.file)
			fields := fieldsOf(t, full)
			for n := range len(full) {
				_, err := codec.Decode(full[:n:n])
				switch {
				case n < 4:
					checkDecodeError(t, err, codec.ErrTruncated, 0, -1)
				case uint64(binary.LittleEndian.Uint32(full))*12 > uint64(n-4):
					checkDecodeError(t, err, codec.ErrCountTooLarge, 0, -1)
				default:
					// The fault is the first field that ends past the cut;
					// an empty key at the cut is complete, so it is skipped.
					i := slices.IndexFunc(fields, func(f field) bool { return f.end > n })
					checkDecodeError(t, err, codec.ErrTruncated, fields[i].start, fields[i].entry)
				}
				if t.Failed() {
					t.Fatalf("cut at %d of %d bytes", n, len(full))
				}
			}
		})
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want string
	}{
		{"bad_empty.hex", "codec: corrupt offset snapshot at byte 0: payload truncated"},
		{"bad_count.hex", "codec: corrupt offset snapshot at byte 0: entry count larger than the payload can hold (count 4294967295)"},
		{"bad_key_cut.hex", "codec: corrupt offset snapshot at byte 20 (entry 1 of 2): payload truncated"},
		{"bad_trailing.hex", "codec: corrupt offset snapshot at byte 23: trailing bytes after the last entry"},
		{"bad_duplicate.hex", `codec: corrupt offset snapshot at byte 21 (entry 1 of 2): duplicate key: "a"`},
		{"bad_utf8.hex", `codec: corrupt offset snapshot at byte 22 (entry 1 of 2): key is not valid UTF-8: "caf\xe9"`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			_, err := codec.Decode(readHex(t, tc.file))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant    %s", err, tc.want)
			}
		})
	}
}

func TestDecodeErrorMessageShortensLongKey(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("k", 1000)
	p := binary.LittleEndian.AppendUint32(nil, 2)
	for range 2 {
		p = binary.LittleEndian.AppendUint32(p, uint32(len(key)))
		p = append(p, key...)
		p = binary.LittleEndian.AppendUint64(p, 1)
	}
	_, err := codec.Decode(p)
	de := checkDecodeError(t, err, codec.ErrDuplicateKey, 4+4+1000+8+4, 1)
	if de.Key != key {
		t.Errorf("Key has %d bytes, want the whole key (%d)", len(de.Key), len(key))
	}
	want := `codec: corrupt offset snapshot at byte 1020 (entry 1 of 2): duplicate key: "` + key[:64] + `"...`
	if err.Error() != want {
		t.Fatalf("err = %v\nwant    %s", err, want)
	}
}

// A duplicate is reported only after the structure is known to be sound:
// here entry 1 repeats entry 0, and the payload is also cut short later.
func TestDecodeReportsStructureBeforeDuplicates(t *testing.T) {
	t.Parallel()
	p := readHex(t, "bad_duplicate.hex")
	binary.LittleEndian.PutUint32(p, 3) // announce a third entry that is not there
	p = append(p, make([]byte, 12-1)...)
	_, err := codec.Decode(p)
	checkDecodeError(t, err, codec.ErrTruncated, 34, 2)
}

func TestDecodeDoesNotRetainPayload(t *testing.T) {
	t.Parallel()
	p := readHex(t, "mixed_unsorted.hex")
	m, err := codec.Decode(p)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := maps.Clone(m)
	for i := range p {
		p[i] = 0xaa
	}
	if !maps.Equal(m, want) {
		t.Fatalf("map changed with the payload: %#v, want %#v", m, want)
	}
}

func TestEncodeRejectsInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		"caf\xe9",          // Latin-1
		"\xed\xa0\x80",     // surrogate half
		"\xc0\xaf",         // overlong
		"\xf4\x90\x80\x80", // above U+10FFFF
		"order-1\xc3",      // cut sequence
		"\xff",
	} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			m := map[string]uint64{key: 1, "order-2": 2, "": 3}

			_, err := codec.Encode(m)
			checkEncodeError(t, err, codec.ErrInvalidUTF8, key)

			prefix := []byte("prefix")
			dst := append(make([]byte, 0, 64), prefix...)
			out, err := codec.AppendEncode(dst, m)
			checkEncodeError(t, err, codec.ErrInvalidUTF8, key)
			if !bytes.Equal(out, prefix) || cap(out) != 64 {
				t.Errorf("AppendEncode changed dst on error: %q (cap %d)", out, cap(out))
			}

			n, err := codec.EncodedLen(m)
			checkEncodeError(t, err, codec.ErrInvalidUTF8, key)
			if n != 0 {
				t.Errorf("EncodedLen = %d with its error", n)
			}
		})
	}
}

func checkEncodeError(t *testing.T, err error, want error, key string) {
	t.Helper()
	var ee *codec.EncodeError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v (%T), want a *codec.EncodeError", err, err)
	}
	if !errors.Is(err, want) {
		t.Errorf("errors.Is(%v, %v) = false", err, want)
	}
	if errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("encode error %v matches ErrCorrupt", err)
	}
	if ee.Key != key {
		t.Errorf("Key = %q, want %q", ee.Key, key)
	}
}

// With several bad keys the error names the smallest, whatever order the
// map iterates in.
func TestEncodeInvalidUTF8ErrorIsDeterministic(t *testing.T) {
	t.Parallel()
	m := map[string]uint64{"\xff": 1, "b\xff": 2, "a\xff": 3, "z\xc3": 4, "ok": 5}
	for range 50 {
		_, err := codec.Encode(m)
		checkEncodeError(t, err, codec.ErrInvalidUTF8, "a\xff")
	}
	_, err := codec.Encode(m)
	if want := `codec: encode key "a\xff": key is not valid UTF-8`; err.Error() != want {
		t.Fatalf("err = %v\nwant    %s", err, want)
	}
}

func TestAppendEncode(t *testing.T) {
	t.Parallel()
	m := map[string]uint64{"order-12": 300, "order-2": 65536, "payment-9": 7}
	want := readHex(t, "sorted.hex")

	t.Run("nil", func(t *testing.T) {
		t.Parallel()
		got, err := codec.AppendEncode(nil, m)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("AppendEncode(nil) = % x, %v; want % x", got, err, want)
		}
	})
	t.Run("grows once", func(t *testing.T) {
		t.Parallel()
		dst := []byte("hdr")
		got, err := codec.AppendEncode(dst, m)
		if err != nil || !bytes.Equal(got, append([]byte("hdr"), want...)) {
			t.Fatalf("AppendEncode = % x, %v", got, err)
		}
		if string(dst) != "hdr" {
			t.Errorf("dst changed to %q", dst)
		}
	})
	t.Run("reuses capacity", func(t *testing.T) {
		t.Parallel()
		buf := make([]byte, 0, 256)
		got, err := codec.AppendEncode(buf, m)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("AppendEncode = % x, %v", got, err)
		}
		if &got[0] != &buf[:1][0] {
			t.Errorf("AppendEncode reallocated a buffer with room to spare")
		}
		again, err := codec.AppendEncode(got[:0], m)
		if err != nil || !bytes.Equal(again, want) {
			t.Fatalf("AppendEncode into reused buffer = % x, %v", again, err)
		}
	})
}

// Encode must agree with the reference encoder on maps large enough to
// exercise the sort, and Decode must give the maps back.
func TestRoundTripGenerated(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 10, 1000, 20_000} {
		m := genOffsets(n)
		p, err := codec.Encode(m)
		if err != nil {
			t.Fatalf("n=%d: Encode: %v", n, err)
		}
		if ref := refEncode(m); !bytes.Equal(p, ref) {
			t.Fatalf("n=%d: Encode differs from the reference encoder", n)
		}
		got, err := codec.Decode(p)
		if err != nil {
			t.Fatalf("n=%d: Decode: %v", n, err)
		}
		if !maps.Equal(got, m) {
			t.Fatalf("n=%d: Decode(Encode(m)) != m", n)
		}
	}
}

func TestManifest(t *testing.T) {
	t.Parallel()
	if codec.Manifest != "outbox-offsets" {
		t.Fatalf("Manifest = %q; it names the format on existing rows and must not change", codec.Manifest)
	}
}
