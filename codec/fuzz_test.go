package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outboxkit/offsetstore/codec"
)

// addHexSeeds adds every testdata/*.hex vector, good and bad, to f's corpus.
func addHexSeeds(f *testing.F) {
	names, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no golden vectors in testdata: %v", err)
	}
	for _, name := range names {
		f.Add(readHex(f, filepath.Base(name)))
	}
}

// FuzzDecode feeds Decode arbitrary bytes. It must never panic; it must
// either fail with a well-formed *DecodeError or return a map that encodes
// and decodes back to itself; and a payload whose keys are already in
// ascending order must encode back to the very same bytes.
func FuzzDecode(f *testing.F) {
	addHexSeeds(f)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := codec.Decode(payload)
		if err != nil {
			var de *codec.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("Decode: %v (%T), want a *DecodeError matching ErrCorrupt", err, err)
			}
			if !slices.Contains(decodeSentinels, de.Err) {
				t.Fatalf("Decode: Err = %v, not one of the decode sentinels", de.Err)
			}
			if de.Offset < 0 || de.Offset > len(payload) || de.Entry < -1 || (de.Entry >= 0 && uint32(de.Entry) >= de.Count) {
				t.Fatalf("Decode: fault at byte %d, entry %d of %d in a %d-byte payload", de.Offset, de.Entry, de.Count, len(payload))
			}
			if m != nil {
				t.Fatalf("Decode returned a map with its error")
			}
			return
		}
		if m == nil {
			t.Fatalf("Decode returned a nil map and no error")
		}

		enc, err := codec.Encode(m)
		if err != nil {
			t.Fatalf("Encode of a decoded map: %v", err)
		}
		if len(enc) != len(payload) {
			t.Fatalf("re-encoded to %d bytes from %d", len(enc), len(payload))
		}
		if ref := refEncode(m); !bytes.Equal(enc, ref) {
			t.Fatalf("Encode differs from the reference encoder")
		}
		again, err := codec.Decode(enc)
		if err != nil {
			t.Fatalf("Decode of a re-encoded map: %v", err)
		}
		if !maps.Equal(again, m) {
			t.Fatalf("round trip changed the map: %v, want %v", again, m)
		}
		if slices.IsSorted(keysInOrder(t, payload)) && !bytes.Equal(enc, payload) {
			t.Fatalf("sorted payload re-encoded differently:\n got % x\nwant % x", enc, payload)
		}
	})
}

// offsetsFromSpec builds a map from fuzz bytes: a run of entries, each a
// length byte, that many key bytes (fewer at the end of input) and up to
// eight bytes of little-endian value. Keys may be any bytes, so some are
// invalid UTF-8; a later duplicate overwrites an earlier one.
func offsetsFromSpec(spec []byte) map[string]uint64 {
	m := make(map[string]uint64)
	for len(spec) > 0 {
		n := min(int(spec[0]), len(spec)-1)
		key := string(spec[1 : 1+n])
		spec = spec[1+n:]
		var v [8]byte
		spec = spec[copy(v[:], spec):]
		m[key] = binary.LittleEndian.Uint64(v[:])
	}
	return m
}

// FuzzRoundTrip encodes maps built from fuzz input. A map with a key that
// is not valid UTF-8 must be refused with an *EncodeError naming the
// smallest such key; any other map must encode as the reference encoder
// does and decode back to itself.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte("\x07order-1\x2a\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x09payment-9\x07\x00\x00\x00\x00\x00\x00\x00\x07order-2\x00\x00\x01\x00\x00\x00\x00\x00\x08order-12\x2c\x01"))
	f.Add([]byte("\x0acafé-🦀\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte("\x07order-1\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("\x04caf\xe9\x01\x02ok\x02"))
	f.Add([]byte("\x03\xed\xa0\x80\x01\x02\xc0\xaf\x02"))
	f.Add([]byte("\x01a\x01\x01a\x02")) // a duplicate: the later value wins

	f.Fuzz(func(t *testing.T, spec []byte) {
		m := offsetsFromSpec(spec)

		var badKeys []string
		for k := range m {
			if !utf8.ValidString(k) {
				badKeys = append(badKeys, k)
			}
		}
		enc, err := codec.Encode(m)
		if len(badKeys) > 0 {
			var ee *codec.EncodeError
			if !errors.As(err, &ee) || !errors.Is(err, codec.ErrInvalidUTF8) || errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("Encode with invalid key: err = %v (%T), want an *EncodeError matching ErrInvalidUTF8", err, err)
			}
			if want := slices.Min(badKeys); ee.Key != want {
				t.Fatalf("Encode named key %q, want the smallest bad key %q", ee.Key, want)
			}
			if enc != nil {
				t.Fatalf("Encode returned bytes with its error")
			}
			return
		}
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if ref := refEncode(m); !bytes.Equal(enc, ref) {
			t.Fatalf("Encode = % x\nwant      % x", enc, ref)
		}
		if n, err := codec.EncodedLen(m); err != nil || n != len(enc) {
			t.Fatalf("EncodedLen = %d, %v; Encode wrote %d bytes", n, err, len(enc))
		}
		got, err := codec.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(m)): %v", err)
		}
		if !maps.Equal(got, m) {
			t.Fatalf("Decode(Encode(m)) = %v, want %v", got, m)
		}
		appended, err := codec.AppendEncode([]byte("prefix"), m)
		if err != nil || !strings.HasPrefix(string(appended), "prefix") || !bytes.Equal(appended[len("prefix"):], enc) {
			t.Fatalf("AppendEncode = % x, %v; want the prefix and then % x", appended, err, enc)
		}
	})
}

// The committed seed corpora must exist and be in the corpus file format,
// so that a plain `go test` runs them and a broken file fails loudly.
func TestSeedCorporaPresent(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"FuzzDecode", "FuzzRoundTrip"} {
		dir := filepath.Join("testdata", "fuzz", target)
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("%s: no seed corpus (%v)", dir, err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), "go test fuzz v1\n[]byte(") {
				t.Errorf("%s/%s is not a one-[]byte corpus file", dir, e.Name())
			}
		}
	}
}
