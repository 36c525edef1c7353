package journal_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

func TestConflictError(t *testing.T) {
	t.Parallel()
	cause := errors.New("backend says duplicate key")
	cases := []struct {
		name    string
		err     *journal.ConflictError
		message string
	}{
		{"WithSequenceNr", &journal.ConflictError{PersistenceID: "p", SequenceNr: 7},
			`journal: sequence number conflict: persistence id "p", sequence nr 7 already exists`},
		{"WithoutSequenceNr", &journal.ConflictError{PersistenceID: "p"},
			`journal: sequence number conflict on persistence id "p"`},
		{"WithCause", &journal.ConflictError{PersistenceID: "p", SequenceNr: 1, Err: cause},
			`journal: sequence number conflict: persistence id "p", sequence nr 1 already exists`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.message {
				t.Fatalf("Error() = %q, want %q", got, tc.message)
			}
			wrapped := fmt.Errorf("store: save: %w", tc.err)
			if !errors.Is(wrapped, journal.ErrSequenceConflict) {
				t.Fatal("a wrapped ConflictError does not match ErrSequenceConflict")
			}
			if errors.Is(wrapped, journal.ErrInvalidArgument) {
				t.Fatal("a ConflictError matches ErrInvalidArgument")
			}
			var ce *journal.ConflictError
			if !errors.As(wrapped, &ce) || ce != tc.err {
				t.Fatal("errors.As does not find the ConflictError")
			}
			if got := errors.Is(wrapped, cause); got != (tc.err.Err == cause) {
				t.Fatalf("errors.Is(err, cause) = %v, want %v", got, !got)
			}
		})
	}
}

func TestInvalidArgumentError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("store: open: %w", &journal.InvalidArgumentError{Field: "persistence id", Reason: "is empty"})
	if got, want := err.Error(), "store: open: journal: invalid persistence id: is empty"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatal("InvalidArgumentError does not match ErrInvalidArgument")
	}
	if errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatal("InvalidArgumentError matches ErrSequenceConflict")
	}
}
