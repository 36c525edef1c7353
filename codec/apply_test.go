package codec_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
)

// Apply changes the snapshot in place as the same change of its map
// would, and refuses a bad new key before changing anything.
func TestSnapshotApply(t *testing.T) {
	t.Parallel()
	start := map[string]uint64{"a": 1, "b": 2, "c": 3}
	s, err := codec.NewSnapshot(start)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(start)
	steps := []struct {
		set     map[string]uint64
		removed []string
	}{
		{map[string]uint64{"a": 10, "d": 4}, nil},
		{map[string]uint64{"e": 5}, []string{"b", "zz"}},
		{nil, []string{"a", "e"}},
		{map[string]uint64{"a": 7, "b": 8}, nil},
	}
	for i, st := range steps {
		if i == 1 {
			e := s.Edit() // an open edit is abandoned
			if err := e.Set("x", 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Apply(st.set, st.removed); err != nil {
			t.Fatalf("step %d: Apply: %v", i, err)
		}
		maps.Copy(want, st.set)
		for _, k := range st.removed {
			delete(want, k)
		}
		if got := s.Map(); !maps.Equal(got, want) {
			t.Fatalf("step %d: Map = %v, want %v", i, got, want)
		}
		dec, err := codec.Decode(s.Payload())
		if err != nil || !maps.Equal(dec, want) {
			t.Fatalf("step %d: Decode(Payload) = %v, %v; want %v", i, dec, err, want)
		}
		for k, v := range want {
			if got, ok := s.Get(k); !ok || got != v {
				t.Fatalf("step %d: Get(%q) = %d, %v", i, k, got, ok)
			}
		}
		if s.Len() != len(want) {
			t.Fatalf("step %d: Len = %d, want %d", i, s.Len(), len(want))
		}
	}
	// An edit after Apply works on the applied snapshot.
	e := s.Edit()
	if err := e.Set("f", 6); err != nil {
		t.Fatal(err)
	}
	e.Commit()
	want["f"] = 6
	if got := s.Map(); !maps.Equal(got, want) {
		t.Fatalf("after an edit: %v, want %v", got, want)
	}

	before := s.Map()
	err = s.Apply(map[string]uint64{"ok": 1, "caf\xe9": 2}, nil)
	if !errors.Is(err, codec.ErrInvalidUTF8) {
		t.Fatalf("Apply of an invalid key = %v, want ErrInvalidUTF8", err)
	}
	if err := s.Apply(map[string]uint64{"k": 1}, []string{"k"}); !errors.Is(err, codec.ErrSetAndRemoved) {
		t.Fatalf("Apply setting and removing a key = %v, want ErrSetAndRemoved", err)
	}
	if got := s.Map(); !maps.Equal(got, before) {
		t.Fatalf("a refused Apply changed the snapshot: %v, want %v", got, before)
	}
}
