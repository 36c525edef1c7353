package codec_test

import (
	"encoding/binary"
	"maps"
	"runtime"
	"slices"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
)

// The tests in this file count allocations, so they do not call t.Parallel:
// Go runs them before any parallel test resumes, alone in the process.

var (
	sinkMap   map[string]uint64
	sinkBytes []byte
	sinkErr   error
)

// bytesPerRun returns the heap bytes f allocates per call, averaged over
// runs calls.
func bytesPerRun(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// A hostile count fails before anything is sized by it: one small
// allocation, the error.
func TestDecodeHostileCountAllocatesLittle(t *testing.T) {
	for _, p := range [][]byte{
		{0xff, 0xff, 0xff, 0xff},
		readHex(t, "bad_count_tail.hex"),
		binary.LittleEndian.AppendUint32(nil, 1<<31),
		append(binary.LittleEndian.AppendUint32(nil, 1<<20), make([]byte, 1<<16)...),
	} {
		decode := func() { sinkMap, sinkErr = codec.Decode(p) }
		if allocs := testing.AllocsPerRun(100, decode); allocs > 1 {
			t.Errorf("count %#x, %d bytes: %v allocations, want at most 1", binary.LittleEndian.Uint32(p), len(p), allocs)
		}
		if b := bytesPerRun(100, decode); b > 128 {
			t.Errorf("count %#x, %d bytes: %d bytes allocated per call, want at most 128", binary.LittleEndian.Uint32(p), len(p), b)
		}
		if sinkMap != nil || sinkErr == nil {
			t.Fatalf("Decode accepted a hostile count")
		}
	}
}

// Structural faults are found before the map or the keys are allocated,
// however large the count and the payload: here entries 0 to n-2 are sound
// and all carry the same key, so only the first pass can fail this cheaply.
func TestDecodeStructuralFaultAllocatesLittle(t *testing.T) {
	const n = 50_000
	p := binary.LittleEndian.AppendUint32(nil, n)
	for range n {
		p = binary.LittleEndian.AppendUint32(p, 8)
		p = append(p, "order-1x"...) // the same key each time
		p = binary.LittleEndian.AppendUint64(p, 1)
	}
	badLast := slices.Clone(p)
	badLast[len(badLast)-9] = 0xff // the last key's last byte
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"truncated last entry", p[:len(p)-1]},
		{"trailing byte", append(slices.Clip(p), 0)},
		{"invalid UTF-8 in the last key", badLast},
	} {
		decode := func() { sinkMap, sinkErr = codec.Decode(tc.p) }
		// The payload is 1 MB; an error costs a few hundred bytes (more
		// under the race detector). Anything sized by the input would be
		// thousands of times this bound.
		if b := bytesPerRun(100, decode); b > 1024 {
			t.Errorf("%s: %d bytes allocated per call, want at most 1024", tc.name, b)
		}
	}
}

// Whatever a payload claims, Decode allocates in proportion to its length:
// a map sized by count ≤ len/12 and one string of at most len bytes.
func TestDecodeAllocationBoundedByInput(t *testing.T) {
	const n = 100_000
	// n empty keys: structurally sound, so the map is sized and built up
	// to the duplicate at entry 1.
	dupes := binary.LittleEndian.AppendUint32(nil, n)
	dupes = append(dupes, make([]byte, n*12)...)
	// n distinct keys: the largest map a payload of this size can hold.
	distinct, err := codec.Encode(genOffsets(n))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"duplicates", dupes},
		{"distinct", distinct},
	} {
		b := bytesPerRun(5, func() { sinkMap, sinkErr = codec.Decode(tc.p) })
		if limit := uint64(6*len(tc.p) + 64<<10); b > limit {
			t.Errorf("%s: %d bytes allocated for a %d-byte payload, want at most %d", tc.name, b, len(tc.p), limit)
		}
		t.Logf("%s: %d bytes allocated for a %d-byte payload (%.2f×)", tc.name, b, len(tc.p), float64(b)/float64(len(tc.p)))
	}
}

// Decode allocates the map plus one string for all keys: no allocation per
// key. The baseline is the same map built from keys that already exist.
func TestDecodeAllocatesOnceForAllKeys(t *testing.T) {
	for _, n := range []int{1, 100, 5000} {
		m := genOffsets(n)
		p, err := codec.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		keys := slices.Collect(maps.Keys(m))
		baseline := testing.AllocsPerRun(20, func() {
			mm := make(map[string]uint64, len(keys))
			for _, k := range keys {
				mm[k] = 1
			}
			sinkMap = mm
		})
		got := testing.AllocsPerRun(20, func() { sinkMap, sinkErr = codec.Decode(p) })
		if got > baseline+1 {
			t.Errorf("%d keys: Decode made %v allocations, building the map alone %v; want at most one more", n, got, baseline)
		}
	}
}

// Encode allocates the output and the sorted key slice, whatever the number
// of keys; AppendEncode into a buffer with room only the key slice.
func TestEncodeAllocs(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 10_000} {
		m := genOffsets(n)
		if got := testing.AllocsPerRun(20, func() { sinkBytes, sinkErr = codec.Encode(m) }); got > 2 {
			t.Errorf("%d keys: Encode made %v allocations, want at most 2", n, got)
		}
		size, err := codec.EncodedLen(m)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, size)
		if got := testing.AllocsPerRun(20, func() { sinkBytes, sinkErr = codec.AppendEncode(buf, m) }); got > 1 {
			t.Errorf("%d keys: AppendEncode with room made %v allocations, want at most 1", n, got)
		}
		if got := testing.AllocsPerRun(20, func() { _, sinkErr = codec.EncodedLen(m) }); got != 0 {
			t.Errorf("%d keys: EncodedLen made %v allocations, want 0", n, got)
		}
	}
}
