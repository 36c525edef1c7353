package journal

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// MaxSequenceNr is the highest sequence number a journal stores: the
// column is a signed 64-bit integer.
const MaxSequenceNr = math.MaxInt64

// MaxPersistenceIDLen bounds a persistence id in bytes. PostgreSQL keeps
// the primary key (persistence_id, sequence_nr) in a B-tree, whose entries
// cannot exceed about a third of a page (2 704 bytes with 8 KiB pages); a
// longer id would fail on the server with "index row size exceeds maximum"
// after the round trip. The offset store's keys (source persistence ids)
// have the same bound.
const MaxPersistenceIDLen = 2048

// ValidatePersistenceID checks that pid is non-empty valid UTF-8 without
// NUL bytes and at most MaxPersistenceIDLen bytes long. The error matches
// ErrInvalidArgument.
func ValidatePersistenceID(pid string) error {
	if pid == "" {
		return &InvalidArgumentError{Field: "persistence id", Reason: "is empty"}
	}
	if len(pid) > MaxPersistenceIDLen {
		return &InvalidArgumentError{Field: "persistence id", Reason: fmt.Sprintf("is %d bytes long, over the limit of %d (MaxPersistenceIDLen)", len(pid), MaxPersistenceIDLen)}
	}
	return validateText("persistence id", pid)
}

// ValidateSequenceNr checks that seq is in 1..MaxSequenceNr. The error
// matches ErrInvalidArgument.
func ValidateSequenceNr(seq uint64) error {
	if seq == 0 {
		return &InvalidArgumentError{Field: "sequence nr", Reason: "is 0 (sequence numbers start at 1)"}
	}
	if seq > MaxSequenceNr {
		return &InvalidArgumentError{Field: "sequence nr", Reason: "exceeds math.MaxInt64 (the column is a bigint)"}
	}
	return nil
}

// ValidateEvent checks everything Append needs of one event: a valid
// persistence id and sequence number, and manifest, writer uuid and tags
// that are valid UTF-8 without NUL bytes (PostgreSQL text cannot hold NUL).
// Payload may be anything, nil included.
func ValidateEvent(ev Event) error {
	if err := ValidatePersistenceID(ev.PersistenceID); err != nil {
		return err
	}
	if err := ValidateSequenceNr(ev.SequenceNr); err != nil {
		return err
	}
	if err := validateText("manifest", ev.Manifest); err != nil {
		return err
	}
	if err := validateText("writer uuid", ev.WriterUUID); err != nil {
		return err
	}
	for _, tag := range ev.Tags {
		if err := validateText("tag", tag); err != nil {
			return err
		}
	}
	return nil
}

// ValidateEvents validates every event of a batch (see ValidateEvent).
func ValidateEvents(events []Event) error {
	for i := range events {
		if err := ValidateEvent(events[i]); err != nil {
			return err
		}
	}
	return nil
}

// ClampSequenceNr returns seq, or MaxSequenceNr when seq is above it. Used
// for range bounds, where math.MaxUint64 conventionally means "to the end".
func ClampSequenceNr(seq uint64) uint64 {
	if seq > MaxSequenceNr {
		return MaxSequenceNr
	}
	return seq
}

func validateText(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return &InvalidArgumentError{Field: field, Reason: "contains a NUL byte"}
	}
	if !utf8.ValidString(s) {
		return &InvalidArgumentError{Field: field, Reason: "is not valid UTF-8"}
	}
	return nil
}
