package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
