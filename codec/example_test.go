package codec_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/outboxkit/offsetstore/codec"
)

func Example() {
	offsets := map[string]uint64{
		"order-2":  7,
		"order-12": 300,
	}
	payload, err := codec.Encode(offsets)
	if err != nil {
		log.Fatal(err)
	}
	// count, then key_len, key, value per entry, keys in byte order.
	fmt.Printf("% x\n", payload[:4])
	fmt.Printf("% x | %s | % x\n", payload[4:8], payload[8:16], payload[16:24])
	fmt.Printf("% x | %s | % x\n", payload[24:28], payload[28:35], payload[35:])

	decoded, err := codec.Decode(payload)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(decoded)
	// Output:
	// 02 00 00 00
	// 08 00 00 00 | order-12 | 2c 01 00 00 00 00 00 00
	// 07 00 00 00 | order-2 | 07 00 00 00 00 00 00 00
	// map[order-12:300 order-2:7]
}

func ExampleDecode_corrupt() {
	// A payload announcing 2^32-1 entries in four bytes fails at once.
	_, err := codec.Decode([]byte{0xff, 0xff, 0xff, 0xff})
	fmt.Println(errors.Is(err, codec.ErrCorrupt), errors.Is(err, codec.ErrCountTooLarge))

	// Trailing bytes, which the original ignored, are refused.
	_, err = codec.Decode([]byte{0, 0, 0, 0, 0})
	var de *codec.DecodeError
	if errors.As(err, &de) {
		fmt.Println(de.Offset, de.Err == codec.ErrTrailingBytes)
	}
	fmt.Println(err)
	// Output:
	// true true
	// 4 true
	// codec: corrupt offset snapshot at byte 4: trailing bytes after the last entry
}

func ExampleEncode_invalidKey() {
	_, err := codec.Encode(map[string]uint64{"caf\xe9": 1})
	fmt.Println(errors.Is(err, codec.ErrInvalidUTF8))
	fmt.Println(err)
	// Output:
	// true
	// codec: encode key "caf\xe9": key is not valid UTF-8
}

func ExampleAppendEncode() {
	// Reuse one buffer across saves; it grows only when a snapshot outgrows it.
	var buf []byte
	for _, offsets := range []map[string]uint64{
		{"order-1": 1},
		{"order-1": 2, "order-2": 1},
	} {
		var err error
		buf, err = codec.AppendEncode(buf[:0], offsets)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(buf))
	}
	// Output:
	// 23
	// 42
}
