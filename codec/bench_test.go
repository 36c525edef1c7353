package codec_test

import (
	"fmt"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
)

var benchSizes = []int{10, 1_000, 10_000, 100_000}

func BenchmarkEncode(b *testing.B) {
	for _, n := range benchSizes {
		m := genOffsets(n)
		size, err := codec.EncodedLen(m)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.Encode(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendEncode reuses one buffer, as a store saving often would.
func BenchmarkAppendEncode(b *testing.B) {
	for _, n := range benchSizes {
		m := genOffsets(n)
		size, err := codec.EncodedLen(m)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			buf := make([]byte, 0, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = codec.AppendEncode(buf[:0], m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, n := range benchSizes {
		payload, err := codec.Encode(genOffsets(n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.Decode(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
