package codec

import (
	"errors"
	"strings"
	"testing"
)

// The format's real limits (2^32−1 keys, keys of 2^32−1 bytes) cannot be
// reached in a test, so these tests lower them.

func TestEncodeLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 100)
	tests := []struct {
		name    string
		lim     limits
		offsets map[string]uint64
		want    error
		key     string
		msg     string
	}{
		{
			name:    "too many keys",
			lim:     limits{maxKeys: 2, maxKeyLen: 100, maxSize: 1 << 20},
			offsets: map[string]uint64{"a": 1, "b": 2, "c": 3},
			want:    ErrTooManyKeys,
			msg:     "codec: encode: more than 2^32-1 keys",
		},
		{
			name:    "key too long",
			lim:     limits{maxKeys: 10, maxKeyLen: 99, maxSize: 1 << 20},
			offsets: map[string]uint64{long: 1, "ok": 2},
			want:    ErrKeyTooLong,
			key:     long,
			msg:     `codec: encode key "` + long[:64] + `"... (100 bytes): key longer than 2^32-1 bytes`,
		},
		{
			// Both keys are at fault; the smaller is named.
			name:    "key too long before invalid UTF-8",
			lim:     limits{maxKeys: 10, maxKeyLen: 3, maxSize: 1 << 20},
			offsets: map[string]uint64{"b\xff": 1, "abcd": 2},
			want:    ErrKeyTooLong,
			key:     "abcd",
			msg:     `codec: encode key "abcd" (4 bytes): key longer than 2^32-1 bytes`,
		},
		{
			name:    "too large",
			lim:     limits{maxKeys: 10, maxKeyLen: 100, maxSize: 4 + 2*12 + 5},
			offsets: map[string]uint64{"abc": 1, "def": 2},
			want:    ErrTooLarge,
			msg:     "codec: encode: encoded snapshot larger than the address space",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, collect := range []bool{false, true} {
				keys, n, err := tc.lim.measure(tc.offsets, collect)
				if keys != nil || n != 0 {
					t.Errorf("measure returned %d keys, length %d with its error", len(keys), n)
				}
				var ee *EncodeError
				if !errors.As(err, &ee) || !errors.Is(err, tc.want) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("measure: err = %v, want an *EncodeError matching %v only", err, tc.want)
				}
				if ee.Key != tc.key {
					t.Errorf("Key = %q, want %q", ee.Key, tc.key)
				}
				if err.Error() != tc.msg {
					t.Errorf("err = %v\nwant    %s", err, tc.msg)
				}
			}
			dst := []byte("keep")
			out, err := tc.lim.appendEncode(dst, tc.offsets)
			if !errors.Is(err, tc.want) || string(out) != "keep" {
				t.Fatalf("appendEncode = %q, %v; want dst unchanged and %v", out, err, tc.want)
			}
		})
	}
}

// At exactly the limits, encoding succeeds.
func TestEncodeAtLimits(t *testing.T) {
	t.Parallel()
	lim := limits{maxKeys: 2, maxKeyLen: 3, maxSize: 4 + 2*12 + 6}
	out, err := lim.appendEncode(nil, map[string]uint64{"abc": 1, "def": 2})
	if err != nil {
		t.Fatalf("appendEncode: %v", err)
	}
	if len(out) != int(lim.maxSize) {
		t.Fatalf("len = %d, want %d", len(out), lim.maxSize)
	}
}

func TestFormatLimits(t *testing.T) {
	t.Parallel()
	if formatLimits.maxKeys != 1<<32-1 || formatLimits.maxKeyLen != 1<<32-1 {
		t.Fatalf("formatLimits = %+v; the u32 fields of the format fix both at 2^32-1", formatLimits)
	}
}
