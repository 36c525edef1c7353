package codec_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readHex reads testdata/name: hex digits, whitespace ignored, '#' starts a
// comment that runs to the end of the line.
func readHex(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("read golden vector: %v", err)
	}
	var digits strings.Builder
	for line := range strings.Lines(string(raw)) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, f := range strings.Fields(line) {
			digits.WriteString(f)
		}
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		tb.Fatalf("testdata/%s: %v", name, err)
	}
	return b
}

// refEncode is the format written out the slow, obvious way, to check the
// encoder against. It does no validation.
func refEncode(m map[string]uint64) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []byte
	out = binary.LittleEndian.AppendUint32(out, uint32(len(keys)))
	for _, k := range keys {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.LittleEndian.AppendUint64(out, m[k])
	}
	return out
}

// field is one field of a well-formed payload: bytes [start, end) of entry
// (-1 for the count header).
type field struct {
	start, end int
	entry      int
}

// fieldsOf splits a well-formed payload into its fields, in order. Empty
// keys give empty fields.
func fieldsOf(tb testing.TB, p []byte) []field {
	tb.Helper()
	fs := []field{{0, 4, -1}}
	count := int(binary.LittleEndian.Uint32(p))
	off := 4
	for i := range count {
		n := int(binary.LittleEndian.Uint32(p[off:]))
		fs = append(fs,
			field{off, off + 4, i},
			field{off + 4, off + 4 + n, i},
			field{off + 4 + n, off + 12 + n, i},
		)
		off += 12 + n
	}
	if off != len(p) {
		tb.Fatalf("fieldsOf: %d bytes parsed of %d", off, len(p))
	}
	return fs
}

// keysInOrder returns the keys of a well-formed payload in the order they
// are written.
func keysInOrder(tb testing.TB, p []byte) []string {
	tb.Helper()
	var keys []string
	for i, f := range fieldsOf(tb, p) {
		if i%3 == 2 { // header, then key_len, key, value per entry
			keys = append(keys, string(p[f.start:f.end]))
		}
	}
	return keys
}

// genOffsets returns n realistic offsets: persistence ids like
// "order-3f9c2e1a-7b6d-4c5e" of 20 to 40 bytes, sequence numbers below 2^20.
// The same n gives the same map.
func genOffsets(n int) map[string]uint64 {
	r := rand.New(rand.NewPCG(0x0ff5e7, uint64(n)))
	prefixes := []string{"order-", "invoice-", "shipment-", "customer-", "cart-"}
	m := make(map[string]uint64, n)
	for len(m) < n {
		k := fmt.Sprintf("%s%08x-%04x-%04x", prefixes[r.IntN(len(prefixes))],
			r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff)
		if r.IntN(2) == 0 {
			k += fmt.Sprintf("-%04x-%04x", r.Uint32()&0xffff, r.Uint32()&0xffff)
		}
		m[k] = r.Uint64N(1<<20) + 1
	}
	return m
}
