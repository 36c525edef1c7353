package pgjournal_test

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// encodeTags is pgx's own binary encoding of a text[].
func encodeTags(t testing.TB, tags any) []byte {
	t.Helper()
	buf, err := pgtype.NewMap().Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, tags, nil)
	if err != nil {
		t.Fatalf("encode %v: %v", tags, err)
	}
	return buf
}

func TestDecodeTags(t *testing.T) {
	t.Parallel()
	for _, tags := range [][]string{
		{},
		{""},
		{"a"},
		{"plain", "a,b", "{braces}", `"quoted"`, `back\slash`, "NULL", "", " spaced ", "ü✓", "dup", "dup"},
	} {
		got, ok := pgjournal.DecodeTags(encodeTags(t, tags))
		if !ok || !slices.Equal(got, tags) || got == nil {
			t.Errorf("DecodeTags(%q) = %q, %v", tags, got, ok)
		}
	}
	// What it leaves to pgx.
	nullElem := encodeTags(t, []pgtype.Text{{String: "a", Valid: true}, {}})
	twoDims := encodeTags(t, [][]string{{"a", "b"}, {"c", "d"}})
	good := encodeTags(t, []string{"ab", "c"})
	for name, src := range map[string][]byte{
		"nil":        nil,
		"short":      good[:11],
		"null elem":  nullElem,
		"two dims":   twoDims,
		"cut header": good[:19],
		"cut elem":   good[:len(good)-1],
		"trailing":   append(slices.Clone(good), 0),
		"negative n": binary.BigEndian.AppendUint32(slices.Clone(good[:12]), 0xFFFFFFFF),
		"huge n":     append(binary.BigEndian.AppendUint32(slices.Clone(good[:12]), 1<<30), 0, 0, 0, 1),
		"empty tail": append(encodeTags(t, []string{}), 0),
	} {
		if got, ok := pgjournal.DecodeTags(src); ok {
			t.Errorf("DecodeTags(%s) = %q, true; want false", name, got)
		}
	}
}

// Whatever decodeTags accepts, pgx decodes to the same strings.
func FuzzDecodeTags(f *testing.F) {
	f.Add(encodeTags(f, []string{}))
	f.Add(encodeTags(f, []string{"a", "", "ü✓"}))
	f.Add(encodeTags(f, [][]string{{"a"}, {"b"}}))
	f.Add(encodeTags(f, []pgtype.Text{{}}))
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, src []byte) {
		got, ok := pgjournal.DecodeTags(src)
		if !ok {
			return
		}
		var want []string
		if err := m.Scan(pgtype.TextArrayOID, pgtype.BinaryFormatCode, src, &want); err != nil {
			t.Fatalf("DecodeTags accepted %x as %q, pgx rejects it: %v", src, got, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("DecodeTags(%x) = %q, pgx decodes %q", src, got, want)
		}
	})
}
