package journal_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/journal"
)

// wantValid checks err against the expectation of a table row: nil when
// reason is "", else an *InvalidArgumentError for field whose message
// mentions reason.
func wantValid(t *testing.T, err error, field, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("got error %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("got error %v, want one matching ErrInvalidArgument", err)
	}
	if errors.Is(err, journal.ErrSequenceConflict) {
		t.Fatalf("error %v also matches ErrSequenceConflict", err)
	}
	var ie *journal.InvalidArgumentError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *InvalidArgumentError", err, err)
	}
	if ie.Field != field || !strings.Contains(ie.Reason, reason) {
		t.Fatalf("error names field %q, reason %q; want field %q, reason containing %q", ie.Field, ie.Reason, field, reason)
	}
	if want := "journal: invalid " + field + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error message %q does not start with %q", err, want)
	}
}

func TestValidatePersistenceID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, pid, reason string
	}{
		{"Plain", "outbox::orders::offsets", ""},
		{"OneByte", "a", ""},
		{"Unicode", "ünïcødé ✓", ""},
		{"Wildcards", "a%_*\\", ""},
		{"Spaces", " ", ""},
		{"AtLimit", strings.Repeat("x", journal.MaxPersistenceIDLen), ""},
		{"OverLimit", strings.Repeat("x", journal.MaxPersistenceIDLen+1), "over the limit of 2048"},
		{"Huge", strings.Repeat("x", 1<<16), "over the limit"},
		{"Empty", "", "is empty"},
		{"NUL", "a\x00b", "NUL"},
		{"OnlyNUL", "\x00", "NUL"},
		{"InvalidUTF8", "a\xff", "UTF-8"},
		{"TruncatedRune", "\xe2\x9c", "UTF-8"},
		{"Surrogate", "\xed\xa0\x80", "UTF-8"},
		{"Overlong", "\xc0\xaf", "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantValid(t, journal.ValidatePersistenceID(tc.pid), "persistence id", tc.reason)
		})
	}
}

func TestValidateSequenceNr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		seq    uint64
		reason string
	}{
		{"One", 1, ""},
		{"Two", 2, ""},
		{"MaxInt64", math.MaxInt64, ""},
		{"MaxSequenceNr", journal.MaxSequenceNr, ""},
		{"Zero", 0, "is 0"},
		{"MaxInt64PlusOne", math.MaxInt64 + 1, "exceeds"},
		{"MaxUint64", math.MaxUint64, "exceeds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantValid(t, journal.ValidateSequenceNr(tc.seq), "sequence nr", tc.reason)
		})
	}
}

func TestValidateEvent(t *testing.T) {
	t.Parallel()
	valid := journal.Event{
		PersistenceID: "p",
		SequenceNr:    1,
		Payload:       []byte{0, 0xff},
		Manifest:      "m",
		WriterUUID:    "w",
		Tags:          []string{"t", ""},
	}
	with := func(f func(*journal.Event)) journal.Event {
		ev := valid
		ev.Tags = append([]string(nil), valid.Tags...)
		f(&ev)
		return ev
	}
	cases := []struct {
		name          string
		ev            journal.Event
		field, reason string
	}{
		{"Valid", valid, "", ""},
		{"Minimal", journal.Event{PersistenceID: "p", SequenceNr: 1}, "", ""},
		{"BinaryPayload", with(func(ev *journal.Event) { ev.Payload = []byte("\x00\xff\xfe") }), "", ""},
		{"DeletedAndWrittenAtIgnored", with(func(ev *journal.Event) { ev.Deleted = true }), "", ""},
		{"EmptyPersistenceID", with(func(ev *journal.Event) { ev.PersistenceID = "" }), "persistence id", "is empty"},
		{"BadPersistenceID", with(func(ev *journal.Event) { ev.PersistenceID = "\xff" }), "persistence id", "UTF-8"},
		{"SequenceNrZero", with(func(ev *journal.Event) { ev.SequenceNr = 0 }), "sequence nr", "is 0"},
		{"SequenceNrTooLarge", with(func(ev *journal.Event) { ev.SequenceNr = math.MaxUint64 }), "sequence nr", "exceeds"},
		{"NULInManifest", with(func(ev *journal.Event) { ev.Manifest = "\x00" }), "manifest", "NUL"},
		{"InvalidUTF8Manifest", with(func(ev *journal.Event) { ev.Manifest = "\xff" }), "manifest", "UTF-8"},
		{"NULInWriterUUID", with(func(ev *journal.Event) { ev.WriterUUID = "w\x00" }), "writer uuid", "NUL"},
		{"InvalidUTF8WriterUUID", with(func(ev *journal.Event) { ev.WriterUUID = "\x80" }), "writer uuid", "UTF-8"},
		{"NULInTag", with(func(ev *journal.Event) { ev.Tags = append(ev.Tags, "\x00") }), "tag", "NUL"},
		{"InvalidUTF8Tag", with(func(ev *journal.Event) { ev.Tags[0] = "\xc3" }), "tag", "UTF-8"},
		// The persistence id is checked first.
		{"SeveralProblems", journal.Event{Manifest: "\x00"}, "persistence id", "is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantValid(t, journal.ValidateEvent(tc.ev), tc.field, tc.reason)
		})
	}
}

func TestValidateEvents(t *testing.T) {
	t.Parallel()
	ok := journal.Event{PersistenceID: "p", SequenceNr: 1}
	bad := journal.Event{PersistenceID: "p", SequenceNr: 0}
	cases := []struct {
		name   string
		events []journal.Event
		reason string
	}{
		{"Nil", nil, ""},
		{"Empty", []journal.Event{}, ""},
		{"OneValid", []journal.Event{ok}, ""},
		// Duplicates are the journal's business, not validation's.
		{"Duplicates", []journal.Event{ok, ok}, ""},
		{"OneInvalid", []journal.Event{bad}, "is 0"},
		{"InvalidLast", []journal.Event{ok, ok, bad}, "is 0"},
		{"InvalidFirst", []journal.Event{bad, ok}, "is 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantValid(t, journal.ValidateEvents(tc.events), "sequence nr", tc.reason)
		})
	}
}

func TestClampSequenceNr(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want uint64 }{
		{0, 0},
		{1, 1},
		{math.MaxInt64 - 1, math.MaxInt64 - 1},
		{math.MaxInt64, math.MaxInt64},
		{math.MaxInt64 + 1, math.MaxInt64},
		{math.MaxUint64, math.MaxInt64},
	}
	for _, tc := range cases {
		if got := journal.ClampSequenceNr(tc.in); got != tc.want {
			t.Errorf("ClampSequenceNr(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
