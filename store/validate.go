package store

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/outboxkit/offsetstore/codec"
)

// ValidateName reports whether name can name an outbox: it must be
// non-empty valid UTF-8 without NUL bytes and at most MaxNameLen bytes
// long. The error matches ErrInvalidName. Open runs the same check.
func ValidateName(name string) error {
	if reason := textProblem(name, MaxNameLen); reason != "" {
		return &invalidError{kind: ErrInvalidName, what: "outbox name", value: name, reason: reason}
	}
	return nil
}

// ValidateKey reports whether key can be an offset key: it must be
// non-empty valid UTF-8 without NUL bytes and at most MaxKeyLen bytes
// long. The error matches ErrInvalidKey, and codec.ErrInvalidUTF8 too when
// the key is not valid UTF-8. Save, Rewind, Forget and Replace
// run the same check on keys the store does not hold yet.
func ValidateKey(key string) error {
	if reason := textProblem(key, MaxKeyLen); reason != "" {
		e := &invalidError{kind: ErrInvalidKey, what: "key", value: key, reason: reason}
		if len(key) <= MaxKeyLen && !utf8.ValidString(key) {
			e.cause = codec.ErrInvalidUTF8 // the codec's own refusal, matched too
		}
		return e
	}
	return nil
}

// textProblem says what is wrong with s as a name or key, or "" when
// nothing is. The length is checked first, so that a huge input is refused
// before it is scanned.
func textProblem(s string, maxLen int) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxLen:
		return fmt.Sprintf("is %d bytes long, over the limit of %d", len(s), maxLen)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	}
	return ""
}
