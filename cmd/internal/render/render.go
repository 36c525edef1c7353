// Package render formats what the offsetstore commands print: aligned
// text tables, name/value fields, keys, times and JSON. The operator CLI
// (cmd/offsetstore) and the demo (cmd/offsetstore-demo) share it, so that
// the demo prints a snapshot exactly as offsetstore show does.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rivo/uniseg"

	"github.com/outboxkit/offsetstore/journal"
)

// Table is an aligned text table: columns separated by two spaces,
// numbers aligned right, no trailing spaces.
type Table struct {
	Header []string
	Right  []bool // per column: align right
	Rows   [][]string
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Write writes the header and the rows.
func (t *Table) Write(w io.Writer) error {
	all := append([][]string{t.Header}, t.Rows...)
	widths := make([]int, len(t.Header))
	for _, row := range all {
		for i, c := range row {
			widths[i] = max(widths[i], uniseg.StringWidth(c))
		}
	}
	var b strings.Builder
	for _, row := range all {
		var line strings.Builder
		for i, c := range row {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-uniseg.StringWidth(c))
			if t.Right[i] {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Key is a key as tables show it: as it is, or Go-quoted when it contains
// a space, a quote, a backslash or a character that is not printable, so
// that every row stays one line of whitespace-separated fields.
func Key(k string) string {
	for _, r := range k {
		if r == ' ' || r == '"' || r == '\\' || !unicode.IsPrint(r) {
			return strconv.Quote(k)
		}
	}
	return k
}

// timeLayout formats written_at: UTC, microseconds (PostgreSQL's
// precision), fixed width.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Time formats a row's written_at.
func Time(t time.Time) string { return t.UTC().Format(timeLayout) }

// U64 formats v in decimal.
func U64(v uint64) string { return strconv.FormatUint(v, 10) }

// JSON writes v indented, with <, > and & as they are.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Fields writes name/value lines with the values aligned.
func Fields(w io.Writer, fields [][2]string) error {
	width := 0
	for _, f := range fields {
		width = max(width, len(f[0]))
	}
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%-*s  %s\n", width, f[0], f[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// More notes the rows a table left out, if any.
func More(w io.Writer, more int) error {
	if more <= 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "... and %d more keys\n", more)
	return err
}

// Snapshot is the newest snapshot row of an outbox and its offsets.
type Snapshot struct {
	Outbox  string
	Event   journal.Event
	Offsets map[string]uint64
	// Mode is the outbox's mode, "full" or "incremental"; not shown when
	// empty.
	Mode string
}

// Show writes the snapshot's header and its offsets sorted by key, the
// first limit of them when limit > 0: the output of offsetstore show.
func Show(w io.Writer, s *Snapshot, limit int) error {
	fields := [][2]string{
		{"outbox", Key(s.Outbox)},
		{"persistence_id", Key(s.Event.PersistenceID)},
		{"seq", U64(s.Event.SequenceNr)},
		{"writer", Key(s.Event.WriterUUID)},
		{"written_at", Time(s.Event.WrittenAt)},
		{"keys", fmt.Sprint(len(s.Offsets))},
	}
	if s.Mode != "" {
		fields = append(fields, [2]string{"mode", s.Mode})
	}
	if err := Fields(w, fields); err != nil {
		return err
	}
	if len(s.Offsets) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(s.Offsets))
	t := &Table{Header: []string{"KEY", "OFFSET"}, Right: []bool{false, true}}
	for i, k := range keys {
		if limit > 0 && i == limit {
			break
		}
		t.Add(Key(k), U64(s.Offsets[k]))
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	if err := t.Write(w); err != nil {
		return err
	}
	return More(w, len(keys)-len(t.Rows))
}
