package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/codec"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// Error messages name the call once: "store: save "x": invalid offset
// key: …", never "store: save "x": store: invalid offset key".
func TestInvalidKeyMessageHasOnePrefix(t *testing.T) {
	t.Parallel()
	s := open(t, journal.NewMemory(), "x")
	err := s.Save(t.Context(), map[string]uint64{"": 1})
	if !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("Save of an empty key = %v, want ErrInvalidKey", err)
	}
	if got := err.Error(); strings.Count(got, "store:") != 1 || !strings.HasPrefix(got, `store: save "x": invalid offset key`) {
		t.Fatalf("message %q: want one store: prefix and the call named first", got)
	}
	if err := store.ValidateKey(""); err == nil || !strings.HasPrefix(err.Error(), "store: invalid offset key") {
		t.Fatalf("ValidateKey(\"\") = %v, want a store: invalid offset key error", err)
	}
}

// A key that is not valid UTF-8 is refused as the codec would refuse it:
// the error matches both store.ErrInvalidKey and codec.ErrInvalidUTF8, and
// nothing is written. An empty key is the store's own rule only.
func TestInvalidUTF8KeyMatchesCodec(t *testing.T) {
	t.Parallel()
	j := journal.NewMemory()
	s := open(t, j, "utf8")
	err := s.Save(t.Context(), map[string]uint64{"ok": 1, "bad\xff": 1})
	if !errors.Is(err, store.ErrInvalidKey) || !errors.Is(err, codec.ErrInvalidUTF8) {
		t.Fatalf("Save of a key that is not UTF-8 = %v, want ErrInvalidKey and codec.ErrInvalidUTF8", err)
	}
	if h, err := j.HighestSequenceNr(t.Context(), s.PersistenceID()); err != nil || h != 0 {
		t.Fatalf("highest = %d, %v after a refused key; want 0", h, err)
	}
	if err := store.ValidateKey(""); !errors.Is(err, store.ErrInvalidKey) || errors.Is(err, codec.ErrInvalidUTF8) {
		t.Fatalf("ValidateKey(\"\") = %v, want ErrInvalidKey only", err)
	}
}

// A Save whose context is already done sends nothing and says so: the
// context's error, not "outcome unknown".
func TestSaveWithDoneContext(t *testing.T) {
	t.Parallel()
	j := journal.NewMemory()
	s := open(t, j, "done")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Save(ctx, map[string]uint64{"a": 1})
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "unknown") {
		t.Fatalf("Save with a cancelled context = %v, want context.Canceled without an unknown outcome", err)
	}
	if hi := highest(t, j, s.PersistenceID()); hi != 0 {
		t.Fatalf("highest after a cancelled Save = %d, want 0", hi)
	}
}
