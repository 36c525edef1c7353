package codec_test

import (
	"bytes"
	"errors"
	"maps"
	"strconv"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
)

// decodeOK decodes payload and fails t unless it decodes to want.
func decodeOK(t *testing.T, what string, payload []byte, want map[string]uint64) {
	t.Helper()
	got, err := codec.Decode(payload)
	if err != nil {
		t.Fatalf("%s: Decode: %v", what, err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%s: decodes to %v, want %v", what, got, want)
	}
}

func checkSnapshot(t *testing.T, s *codec.Snapshot, want map[string]uint64) {
	t.Helper()
	decodeOK(t, "snapshot payload", s.Payload(), want)
	if got := s.Map(); !maps.Equal(got, want) {
		t.Fatalf("Map = %v, want %v", got, want)
	}
	if s.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(want))
	}
	for k, v := range want {
		if got, ok := s.Get(k); !ok || got != v {
			t.Fatalf("Get(%q) = %d, %v; want %d, true", k, got, ok, v)
		}
	}
	n := 0
	for k, v := range s.All() {
		if want[k] != v {
			t.Fatalf("All yields %q=%d, want %d", k, v, want[k])
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("All yields %d keys, want %d", n, len(want))
	}
}

func TestNewSnapshotEncodesAsEncode(t *testing.T) {
	m := map[string]uint64{"b": 2, "a": 1, "ü": 3}
	s, err := codec.NewSnapshot(m)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := codec.Encode(m)
	if !bytes.Equal(s.Payload(), enc) {
		t.Fatalf("NewSnapshot payload % x, want Encode's % x", s.Payload(), enc)
	}
	checkSnapshot(t, s, m)
	if _, err := codec.NewSnapshot(map[string]uint64{"\xff": 1}); !errors.Is(err, codec.ErrInvalidUTF8) {
		t.Fatalf("NewSnapshot of a bad key = %v, want ErrInvalidUTF8", err)
	}
}

func TestParseSnapshotIsStrict(t *testing.T) {
	for _, name := range []string{"bad_duplicate.hex", "bad_trailing.hex", "bad_count.hex", "bad_utf8.hex", "bad_empty.hex"} {
		payload := readHex(t, name)
		_, want := codec.Decode(payload)
		_, err := codec.ParseSnapshot(payload)
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Fatalf("%s: ParseSnapshot = %v, want Decode's %v", name, err, want)
		}
	}
	payload := readHex(t, "mixed_unsorted.hex")
	want, err := codec.Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := codec.ParseSnapshot(payload)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, s, want)
	payload[len(payload)-1] ^= 0xff // the Snapshot holds a copy
	checkSnapshot(t, s, want)
}

func TestEditCommitAndAbandon(t *testing.T) {
	base := map[string]uint64{"a": 1, "b": 2, "c": 3}
	s, err := codec.NewSnapshot(base)
	if err != nil {
		t.Fatal(err)
	}

	// Abandoned: the snapshot stays as it was.
	e := s.Edit()
	if err := e.Set("a", 10); err != nil {
		t.Fatal(err)
	}
	if err := e.Set("new", 5); err != nil {
		t.Fatal(err)
	}
	e.Delete("b")
	decodeOK(t, "abandoned edit", e.Payload(), map[string]uint64{"a": 10, "c": 3, "new": 5})
	checkSnapshot(t, s, base)

	// Committed.
	e = s.Edit()
	v, slot, ok := e.Lookup("b")
	if !ok || v != 2 {
		t.Fatalf("Lookup(b) = %d, %v", v, ok)
	}
	e.Put(slot, 20)
	if err := e.Set("d", 4); err != nil {
		t.Fatal(err)
	}
	if !e.Delete("a") || e.Delete("zz") {
		t.Fatal("Delete reports the wrong presence")
	}
	if !e.Changed() {
		t.Fatal("Changed = false after changes")
	}
	e.Commit()
	want := map[string]uint64{"b": 20, "c": 3, "d": 4}
	checkSnapshot(t, s, want)

	// Values only: the payload keeps its layout and nothing is allocated.
	e = s.Edit()
	e.Put(func() codec.Slot { _, sl, _ := e.Lookup("d"); return sl }(), 4)
	if e.Changed() {
		t.Fatal("Changed = true after setting the same value")
	}
	e.Commit()
	checkSnapshot(t, s, want)

	if err := s.Edit().Set("\xff", 1); !errors.Is(err, codec.ErrInvalidUTF8) {
		t.Fatalf("Set of a bad key = %v, want ErrInvalidUTF8", err)
	}
	checkSnapshot(t, s, want)
}

func TestEditOfValuesDoesNotAllocate(t *testing.T) {
	m := make(map[string]uint64, 1000)
	keys := make([]string, 0, 1000)
	for i := range 1000 {
		k := "order-" + strconv.Itoa(i)
		m[k] = 1
		keys = append(keys, k)
	}
	s, err := codec.NewSnapshot(m)
	if err != nil {
		t.Fatal(err)
	}
	// The first two edits fill the double buffer.
	v := uint64(1)
	edit := func() {
		v++
		e := s.Edit()
		for _, k := range keys {
			if _, slot, ok := e.Lookup(k); ok {
				e.Put(slot, v)
			}
		}
		_ = e.Payload()
		e.Commit()
	}
	edit()
	edit()
	if n := testing.AllocsPerRun(20, edit); n != 0 {
		t.Fatalf("an edit of 1 000 values allocates %.0f times, want 0", n)
	}
	higher := func(old, v uint64) bool { return v > old }
	walk := func() {
		v++
		for _, k := range keys {
			m[k] = v
		}
		e := s.Edit()
		if held := e.PutAll(m, higher); held != len(keys) {
			t.Fatalf("PutAll held %d of %d keys", held, len(keys))
		}
		e.Commit()
	}
	walk()
	if n := testing.AllocsPerRun(20, walk); n != 0 {
		t.Fatalf("PutAll of 1 000 values allocates %.0f times, want 0", n)
	}
	for _, k := range keys {
		m[k] = v
	}
	checkSnapshot(t, s, m)
}

func TestCommitOfAClosedEditPanics(t *testing.T) {
	s, _ := codec.NewSnapshot(nil)
	e := s.Edit()
	e.Commit()
	defer func() {
		if recover() == nil {
			t.Fatal("second Commit did not panic")
		}
	}()
	e.Commit()
}

// FuzzSnapshotEdit applies edit sequences read from the input to a
// Snapshot and to a plain map, and checks after every step that the
// edit's payload, and after every commit the Snapshot, decode to the map.
func FuzzSnapshotEdit(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 3, 4, 1, 1, 5, 2, 9, 9})
	f.Add([]byte{0x10, 1, 0x20, 1, 0x30, 0x21, 0x05, 0x40, 0x11, 0x3f, 0x50})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x33, 0x44, 0x55})
	keys := []string{"", "a", "b", "c", "order-1", "order-2", "ü", "日本", "k\x00", "long-key-" + string(bytes.Repeat([]byte{'x'}, 40)), "\xff", "e", "f", "g", "h", "i"}
	f.Fuzz(func(t *testing.T, ops []byte) {
		committed := map[string]uint64{}
		if len(ops) > 0 && ops[0]&1 == 1 {
			committed = map[string]uint64{"a": 1, "b": 2, "order-1": 3}
		}
		s, err := codec.NewSnapshot(committed)
		if err != nil {
			t.Fatal(err)
		}
		pending := maps.Clone(committed)
		e := s.Edit()
		sealed := false
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]>>4, ops[i+1]
			key := keys[int(arg)%len(keys)]
			value := uint64(ops[i]&0x0f) | uint64(arg)<<8
			if sealed && (op < 8 || op == 11) {
				op = 8 + op%3 // a sealed edit can only be committed or abandoned
			}
			switch op {
			case 0, 1, 2:
				err := e.Set(key, value)
				if key == "\xff" {
					if _, ok := pending[key]; !ok {
						if !errors.Is(err, codec.ErrInvalidUTF8) {
							t.Fatalf("Set(%q) = %v, want ErrInvalidUTF8", key, err)
						}
						break
					}
				}
				if err != nil {
					t.Fatalf("Set(%q): %v", key, err)
				}
				pending[key] = value
			case 3, 4:
				_, had := pending[key]
				if got := e.Delete(key); got != had {
					t.Fatalf("Delete(%q) = %v, want %v", key, got, had)
				}
				delete(pending, key)
			case 5, 6:
				v, slot, ok := e.Lookup(key)
				want, had := pending[key]
				if ok != had || v != want {
					t.Fatalf("Lookup(%q) = %d, %v; want %d, %v", key, v, ok, want, had)
				}
				if ok {
					e.Put(slot, value)
					pending[key] = value
				}
			case 7:
				decodeOK(t, "sealed edit", e.Payload(), pending)
				sealed = true
			case 8, 9, 10:
				changed := e.Changed()
				p := e.Payload()
				decodeOK(t, "edit before commit", p, pending)
				if !changed && !bytes.Equal(p, s.Payload()) {
					t.Fatal("an unchanged edit's payload differs from the snapshot's")
				}
				e.Commit()
				committed = maps.Clone(pending)
				checkSnapshot(t, s, committed)
				e, sealed = s.Edit(), false
			case 11:
				key2 := keys[(int(arg)+1)%len(keys)]
				offsets := map[string]uint64{key: value, key2: value ^ 0x55}
				want := 0
				for k, v := range offsets {
					if old, ok := pending[k]; ok {
						want++
						if v > old {
							pending[k] = v
						}
					}
				}
				if held := e.PutAll(offsets, func(old, v uint64) bool { return v > old }); held != want {
					t.Fatalf("PutAll held %d, want %d", held, want)
				}
				if e.Len() != len(pending) {
					t.Fatalf("Edit.Len = %d, want %d", e.Len(), len(pending))
				}
			default:
				checkSnapshot(t, s, committed) // abandoned: nothing of it shows
				pending = maps.Clone(committed)
				e, sealed = s.Edit(), false
			}
		}
		decodeOK(t, "last edit", e.Payload(), pending)
		checkSnapshot(t, s, committed)
		again, err := codec.ParseSnapshot(s.Payload())
		if err != nil {
			t.Fatalf("ParseSnapshot of a committed payload: %v", err)
		}
		checkSnapshot(t, again, committed)
	})
}
