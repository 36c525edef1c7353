package pgjournal

import "context"

// LagSQL exposes the statement of StreamLags to the external tests.
var LagSQL = lagSQL

// ListPrefixSQL exposes the statement of a listing with a prefix.
var ListPrefixSQL = listPrefixSQL

// Bytewise reports whether j's table orders persistence ids as bytes.
func Bytewise(ctx context.Context, j *Journal) (bool, error) { return j.bytewise(ctx) }

// BytewiseCollation exposes bytewiseCollation to the external tests.
var BytewiseCollation = bytewiseCollation
