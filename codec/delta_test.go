package codec_test

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outboxkit/offsetstore/codec"
)

// deltaSentinels are the specific errors ParseDelta reports, each also
// matching codec.ErrCorrupt.
var deltaSentinels = []error{
	codec.ErrTruncated,
	codec.ErrTrailingBytes,
	codec.ErrCountTooLarge,
	codec.ErrDuplicateKey,
	codec.ErrInvalidUTF8,
	codec.ErrNotDelta,
	codec.ErrUnknownVersion,
	codec.ErrUnsorted,
	codec.ErrSetAndRemoved,
	codec.ErrBadBase,
}

// deltaGood are the golden deltas in testdata/delta, written by hand from
// the format.
var deltaGood = []struct {
	file string
	want codec.Delta
}{
	{"one.hex", codec.Delta{Base: 7, Root: 5, Set: map[string]uint64{"a": 1, "order-1": 42}, Removed: []string{"order-2"}}},
	{"empty.hex", codec.Delta{Base: 1, Root: 1, Set: map[string]uint64{}}},
	{"utf8.hex", codec.Delta{Base: 3, Root: 2, Set: map[string]uint64{"": 0, "café-🦀": 1<<64 - 1}, Removed: []string{"客户-7"}}},
}

// deltaBad are the golden faulty deltas, with the fault each must report.
var deltaBad = []struct {
	file          string
	want          error
	offset, entry int
}{
	{"bad_version.hex", codec.ErrUnknownVersion, 12, -1},
	{"bad_base.hex", codec.ErrBadBase, 13, -1},
	{"bad_zero_base.hex", codec.ErrBadBase, 13, -1},
	{"bad_unsorted.hex", codec.ErrUnsorted, 50, 1},
	{"bad_duplicate_removed.hex", codec.ErrDuplicateKey, 46, 1},
	{"bad_set_and_removed.hex", codec.ErrSetAndRemoved, 54, 0},
	{"bad_trailing.hex", codec.ErrTrailingBytes, 37, -1},
	{"bad_count.hex", codec.ErrCountTooLarge, 29, -1},
	{"bad_utf8.hex", codec.ErrInvalidUTF8, 41, 0},
	{"bad_cut.hex", codec.ErrTruncated, 25, -1},
}

func equalDelta(a, b codec.Delta) bool {
	return a.Base == b.Base && a.Root == b.Root && maps.Equal(a.Set, b.Set) && slices.Equal(a.Removed, b.Removed)
}

func TestDeltaGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range deltaGood {
		t.Run(tc.file, func(t *testing.T) {
			payload := readHex(t, filepath.Join("delta", tc.file))
			got, err := codec.DecodeDelta(payload)
			if err != nil {
				t.Fatalf("DecodeDelta: %v", err)
			}
			if !equalDelta(got, tc.want) {
				t.Fatalf("DecodeDelta = %+v, want %+v", got, tc.want)
			}
			enc, err := codec.EncodeDelta(tc.want)
			if err != nil {
				t.Fatalf("EncodeDelta: %v", err)
			}
			if !bytes.Equal(enc, payload) {
				t.Fatalf("EncodeDelta:\n got % x\nwant % x", enc, payload)
			}
			if !codec.IsDelta(payload) {
				t.Fatal("IsDelta = false")
			}
			wantFullDecodeRefuses(t, payload)
		})
	}
	for _, tc := range deltaBad {
		t.Run(tc.file, func(t *testing.T) {
			payload := readHex(t, filepath.Join("delta", tc.file))
			_, err := codec.DecodeDelta(payload)
			checkDeltaError(t, err, tc.want, tc.offset, tc.entry)
			wantFullDecodeRefuses(t, payload)
		})
	}
}

// A full snapshot, and anything else that does not start as a delta, is
// refused by ParseDelta with ErrNotDelta; a prefix of the magic is
// truncated.
func TestParseDeltaRefusesSnapshots(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"empty.hex", "one_key.hex", "sorted.hex", "mixed_unsorted.hex"} {
		if _, err := codec.ParseDelta(readHex(t, name)); !errors.Is(err, codec.ErrNotDelta) {
			t.Errorf("%s: ParseDelta = %v, want ErrNotDelta", name, err)
		}
	}
	one := readHex(t, filepath.Join("delta", "one.hex"))
	for n := range 12 {
		_, err := codec.ParseDelta(one[:n])
		checkDeltaError(t, err, codec.ErrTruncated, 0, -1)
	}
	for n := 12; n < len(one); n++ {
		if _, err := codec.ParseDelta(one[:n]); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("ParseDelta of the first %d bytes = %v, want an error", n, err)
		}
	}
}

func TestEncodeDeltaRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		d    codec.Delta
		want error
		key  string
	}{
		{"zero base", codec.Delta{Base: 0, Root: 0}, codec.ErrBadBase, ""},
		{"root above base", codec.Delta{Base: 3, Root: 4}, codec.ErrBadBase, ""},
		{"set and removed", codec.Delta{Base: 2, Root: 1, Set: map[string]uint64{"k": 1}, Removed: []string{"k"}}, codec.ErrSetAndRemoved, "k"},
		{"invalid set key", codec.Delta{Base: 2, Root: 1, Set: map[string]uint64{"caf\xe9": 1}}, codec.ErrInvalidUTF8, "caf\xe9"},
		{"invalid removed key", codec.Delta{Base: 2, Root: 1, Removed: []string{"\xff"}}, codec.ErrInvalidUTF8, "\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := codec.AppendEncodeDelta(dst, tc.d)
			var ee *codec.EncodeError
			if !errors.As(err, &ee) || !errors.Is(err, tc.want) || errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("AppendEncodeDelta = %v (%T), want an *EncodeError matching %v", err, err, tc.want)
			}
			if ee.Key != tc.key {
				t.Fatalf("EncodeError.Key = %q, want %q", ee.Key, tc.key)
			}
			if string(out) != "keep" {
				t.Fatalf("AppendEncodeDelta changed dst on failure: %q", out)
			}
		})
	}
}

// Repeated removed keys are written once, and DeltaLen is the exact
// length of what EncodeDelta writes.
func TestEncodeDeltaCanonical(t *testing.T) {
	t.Parallel()
	d := codec.Delta{Base: 9, Root: 9, Set: map[string]uint64{"b": 2, "a": 1}, Removed: []string{"z", "y", "z"}}
	enc, err := codec.EncodeDelta(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.DecodeDelta(enc)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"y", "z"}; !slices.Equal(got.Removed, want) {
		t.Fatalf("Removed = %q, want %q", got.Removed, want)
	}
	n := codec.DeltaLen(maps.Keys(d.Set), slices.Values([]string{"y", "z"}))
	if n != len(enc) {
		t.Fatalf("DeltaLen = %d, want %d", n, len(enc))
	}
	v, err := codec.ParseDelta(enc)
	if err != nil {
		t.Fatal(err)
	}
	if v.Base() != 9 || v.Root() != 9 || v.SetLen() != 2 || v.RemovedLen() != 2 {
		t.Fatalf("view: base %d root %d set %d removed %d", v.Base(), v.Root(), v.SetLen(), v.RemovedLen())
	}
}

// checkDeltaError fails t unless err is a delta *codec.DecodeError at
// offset and entry that matches want and no other delta sentinel.
func checkDeltaError(t *testing.T, err, want error, offset, entry int) {
	t.Helper()
	var de *codec.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, codec.ErrCorrupt) || !de.Delta {
		t.Fatalf("err = %v (%T), want a delta *DecodeError matching ErrCorrupt", err, err)
	}
	for _, s := range deltaSentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%v, %v) = %t", err, s, got)
		}
	}
	if de.Offset != offset || de.Entry != entry {
		t.Errorf("at byte %d, entry %d; want byte %d, entry %d (%v)", de.Offset, de.Entry, offset, entry, err)
	}
	if !strings.Contains(err.Error(), "corrupt offset delta") {
		t.Errorf("message %q does not say it is a delta", err)
	}
}

// wantFullDecodeRefuses fails t when the full-snapshot Decode accepts a
// payload that starts as a delta: no reader of full snapshots may take a
// delta for the whole map.
func wantFullDecodeRefuses(t *testing.T, payload []byte) {
	t.Helper()
	if !codec.IsDelta(payload) {
		return
	}
	if m, err := codec.Decode(payload); err == nil || !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("Decode accepted a delta payload: %v, %v", m, err)
	}
	if _, err := codec.ParseSnapshot(payload); err == nil {
		t.Fatal("ParseSnapshot accepted a delta payload")
	}
}

// deltaFromSpec builds a delta from fuzz bytes: base and root from the
// first two bytes, then entries as offsetsFromSpec reads them; an entry
// whose value's low bit is set is a removed key instead.
func deltaFromSpec(spec []byte) codec.Delta {
	d := codec.Delta{Base: 1, Root: 1, Set: map[string]uint64{}}
	if len(spec) >= 2 {
		d.Base, d.Root = uint64(spec[0])+1, uint64(spec[1])+1
		spec = spec[2:]
	}
	for k, v := range offsetsFromSpec(spec) {
		if v&1 == 1 {
			d.Removed = append(d.Removed, k)
		} else {
			d.Set[k] = v
		}
	}
	return d
}

// FuzzDeltaRoundTrip encodes deltas built from fuzz input: an invalid one
// is refused with an *EncodeError; a valid one decodes back to itself, its
// length is DeltaLen, and the full-snapshot Decode refuses it.
func FuzzDeltaRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x06\x04\x07order-1\x2a\x00\x00\x00\x00\x00\x00\x00\x07order-2\x01"))
	f.Add([]byte("\x00\x00\x01k\x02\x01k\x03"))
	f.Add([]byte("\x00\x05\x04caf\xe9\x02"))
	f.Fuzz(func(t *testing.T, spec []byte) {
		d := deltaFromSpec(spec)
		enc, err := codec.EncodeDelta(d)
		valid := d.Root <= d.Base
		for k := range d.Set {
			valid = valid && utf8.ValidString(k)
		}
		for _, k := range d.Removed {
			valid = valid && utf8.ValidString(k)
		}
		if !valid {
			var ee *codec.EncodeError
			if !errors.As(err, &ee) || enc != nil {
				t.Fatalf("EncodeDelta of an invalid delta = %v, %d bytes; want an *EncodeError", err, len(enc))
			}
			return
		}
		if err != nil {
			t.Fatalf("EncodeDelta: %v", err)
		}
		got, err := codec.DecodeDelta(enc)
		if err != nil {
			t.Fatalf("DecodeDelta of an encoded delta: %v", err)
		}
		want := d
		want.Removed = slices.Compact(slices.Sorted(slices.Values(d.Removed)))
		if !equalDelta(got, want) {
			t.Fatalf("round trip: %+v, want %+v", got, want)
		}
		if n := codec.DeltaLen(maps.Keys(d.Set), slices.Values(want.Removed)); n != len(enc) {
			t.Fatalf("DeltaLen = %d, want %d", n, len(enc))
		}
		wantFullDecodeRefuses(t, enc)
	})
}

// FuzzDecodeDelta feeds ParseDelta arbitrary bytes. It must never panic;
// it either fails with a delta *DecodeError or returns a delta that
// encodes to the very same bytes (the format has one encoding per delta),
// and the full-snapshot Decode refuses every payload ParseDelta accepts.
func FuzzDecodeDelta(f *testing.F) {
	dir := filepath.Join("testdata", "delta")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		f.Fatalf("no delta vectors: %v", err)
	}
	for _, e := range entries {
		f.Add(readHex(f, filepath.Join("delta", e.Name())))
	}
	addHexSeeds(f) // full snapshots: all refused
	f.Fuzz(func(t *testing.T, payload []byte) {
		d, err := codec.DecodeDelta(payload)
		if err != nil {
			var de *codec.DecodeError
			if !errors.As(err, &de) || !de.Delta || !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("DecodeDelta: %v (%T), want a delta *DecodeError", err, err)
			}
			if !slices.Contains(deltaSentinels, de.Err) {
				t.Fatalf("DecodeDelta: Err = %v, not one of the delta sentinels", de.Err)
			}
			if de.Offset < 0 || de.Offset > len(payload) || de.Entry < -1 || (de.Entry >= 0 && uint32(de.Entry) >= de.Count) {
				t.Fatalf("DecodeDelta: fault at byte %d, entry %d of %d in a %d-byte payload", de.Offset, de.Entry, de.Count, len(payload))
			}
			return
		}
		enc, err := codec.EncodeDelta(d)
		if err != nil {
			t.Fatalf("EncodeDelta of a decoded delta: %v", err)
		}
		if !bytes.Equal(enc, payload) {
			t.Fatalf("re-encoded differently:\n got % x\nwant % x", enc, payload)
		}
		if _, err := codec.Decode(payload); err == nil {
			t.Fatalf("Decode accepted the delta % x", payload)
		}
	})
}

// Over the fuzz corpus of every decoder, and over every delta this
// package can encode from it, the full-snapshot Decode refuses each
// payload that starts as a delta.
func TestFullDecodeRefusesDeltasOverCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	deltas := 0
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		input, ok := corpusBytes(string(raw))
		if !ok {
			continue
		}
		if enc, err := codec.EncodeDelta(deltaFromSpec(input)); err == nil {
			wantFullDecodeRefuses(t, enc)
			deltas++
		}
		if codec.IsDelta(input) {
			wantFullDecodeRefuses(t, input)
			deltas++
		}
	}
	if deltas == 0 {
		t.Fatal("no delta checked: the corpus is missing")
	}
}

// corpusBytes reads the one []byte value of a go test fuzz corpus file.
func corpusBytes(file string) ([]byte, bool) {
	lines := strings.Split(strings.TrimSpace(file), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "go test fuzz v1") || !strings.HasPrefix(lines[1], "[]byte(") {
		return nil, false
	}
	s, err := unquoteGo(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		return nil, false
	}
	return []byte(s), true
}

// unquoteGo unquotes a Go string literal as a corpus file writes one.
func unquoteGo(s string) (string, error) { return strconv.Unquote(s) }
