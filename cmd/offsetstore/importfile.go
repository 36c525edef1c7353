package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/outboxkit/offsetstore/store"
)

// offsetsFile is what import reads: the document export writes,
//
//	{"outbox": "...", "seq": N, "offsets": {"key": offset, ...}, ...}
//
// or a bare object of offsets, {"key": offset, ...}.
type offsetsFile struct {
	outbox  string // "" for a bare object or a document without one
	offsets map[string]uint64
}

// docFields are the fields of the document form; show --json and export
// write all of them, import needs only offsets.
var docFields = map[string]bool{"outbox": true, "persistence_id": true, "seq": true, "writer": true, "written_at": true, "offsets": true}

// parseOffsetsFile reads an offsets file strictly: valid UTF-8, one JSON
// object and nothing after it, no duplicate names, no \u escape that is not
// valid UTF-16, offsets whole numbers from 0 to math.MaxUint64 (what the
// store and the snapshot format hold, so that every export imports), keys
// the store accepts. encoding/json alone would replace invalid UTF-8 and
// lone surrogate escapes with U+FFFD and keep the last of duplicate names,
// silently changing which keys are written.
func parseOffsetsFile(data []byte) (*offsetsFile, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(data))
	}
	top, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	// The whole input is valid JSON now: check every string's escapes.
	if err := checkEscapes(data); err != nil {
		return nil, err
	}
	f := &offsetsFile{}
	raw, isDoc := top.get("offsets")
	isDoc = isDoc && bytes.HasPrefix(raw, []byte("{"))
	if !isDoc {
		f.offsets, err = parseOffsets(top)
		return f, err
	}
	for _, m := range top {
		if !docFields[m.name] {
			return nil, fmt.Errorf("unknown field %q: a document has outbox, persistence_id, seq, writer, written_at and offsets", m.name)
		}
	}
	if v, ok := top.get("outbox"); ok {
		if err := json.Unmarshal(v, &f.outbox); err != nil {
			return nil, fmt.Errorf("field outbox: want a string, got %s", short(v))
		}
	}
	if v, ok := top.get("seq"); ok { // informational: --if-seq makes a write conditional
		if _, err := parseWhole(v); err != nil {
			return nil, fmt.Errorf("field seq: %w", err)
		}
	}
	for _, name := range []string{"persistence_id", "writer", "written_at"} {
		if v, ok := top.get(name); ok {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("field %s: want a string, got %s", name, short(v))
			}
		}
	}
	inner, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("field offsets: %w", err)
	}
	if f.offsets, err = parseOffsets(inner); err != nil {
		return nil, fmt.Errorf("field offsets: %w", err)
	}
	return f, nil
}

func parseOffsets(obj object) (map[string]uint64, error) {
	m := make(map[string]uint64, len(obj))
	for _, e := range obj {
		if err := store.ValidateKey(e.name); err != nil {
			return nil, err
		}
		v, err := parseWhole(e.value)
		if err != nil {
			return nil, fmt.Errorf("offset of key %.64q: %w", e.name, err)
		}
		m[e.name] = v
	}
	return m, nil
}

// parseWhole reads a JSON number that is a whole number from 0 to
// math.MaxUint64.
func parseWhole(raw json.RawMessage) (uint64, error) {
	v, err := parseOffset(string(raw))
	if err != nil {
		return 0, fmt.Errorf("want %s, got %s", wholeRange, short(raw))
	}
	return v, nil
}

// wholeRange is what an offset may be: any value of the snapshot format's
// u64, so that every state the store can hold round-trips through export
// and import.
var wholeRange = fmt.Sprintf("a whole number from 0 to %d", uint64(math.MaxUint64))

// parseOffset reads decimal digits, without sign or exponent, that fit a
// uint64.
func parseOffset(s string) (uint64, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("is not %s", wholeRange)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("is not %s", wholeRange)
	}
	return v, nil
}

// member is one name/value pair of a JSON object.
type member struct {
	name  string
	value json.RawMessage
}

type object []member

func (o object) get(name string) (json.RawMessage, bool) {
	for _, m := range o {
		if m.name == name {
			return m.value, true
		}
	}
	return nil, false
}

// parseObject reads one JSON object, its members in order, refusing
// duplicate names and anything after the object.
func parseObject(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object, got %s", describeToken(tok))
	}
	var obj object
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		name := tok.(string) // inside an object, Token returns the names as strings
		if seen[name] {
			return nil, fmt.Errorf("duplicate name %.64q", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, jsonError(err)
		}
		obj = append(obj, member{name: name, value: v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonError(err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, jsonError(err)
		}
		return nil, fmt.Errorf("unexpected %s after the object", describeToken(tok))
	}
	return obj, nil
}

// checkEscapes refuses a \u escape that is not valid UTF-16: a high
// surrogate not followed by an escaped low one, or a low surrogate alone.
// encoding/json decodes either as U+FFFD, which would silently write
// another key than the file names. data must be valid JSON, so that a
// backslash can only start an escape inside a string.
func checkEscapes(data []byte) error {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		r, ok := escapeAt(data, i)
		if !ok {
			i++ // \", \\, \n …: skip the escaped character
			continue
		}
		next := i + 6
		switch {
		case r >= 0xD800 && r < 0xDC00: // high surrogate: a low one must follow
			if lo, ok := escapeAt(data, next); ok && lo >= 0xDC00 && lo <= 0xDFFF {
				next += 6
				break
			}
			fallthrough
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Errorf("string at offset %d: a \\u escape in it is not valid UTF-16 (lone surrogate %s)", i, data[i:i+6])
		}
		i = next - 1
	}
	return nil
}

// escapeAt reads the \uXXXX escape at data[i:], if there is one.
func escapeAt(data []byte, i int) (rune, bool) {
	if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[i+2:i+6]), 16, 32)
	return rune(v), err == nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON at offset %d: %v", syn.Offset, err)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("invalid JSON: unexpected end of input")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(t))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func short(raw []byte) string {
	const max = 40
	s := string(raw)
	for i := range s {
		if i >= max {
			return s[:i] + "…"
		}
	}
	return s
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}
