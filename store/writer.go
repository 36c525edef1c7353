package store

import "strings"

// OperatorWriterPrefix starts every writer id made by OperatorWriterID.
// The offsetstore CLI stamps its snapshots with such ids, so that a relay
// fenced by an operator's change (a rewind, a forget, an import) can tell
// it from a rival relay: see FencedError.ByOperator.
const OperatorWriterPrefix = "operator:"

// legacyOperatorPrefix is the prefix of the writer ids of the CLI before
// OperatorWriterID; snapshots written by it are still recognised.
const legacyOperatorPrefix = "offsetstore-cli-"

// OperatorWriterID returns a new writer id for one run of an operator's
// tool: "operator:<tool>:<random UUID>". Pass it to WithWriterID when a
// tool of your own writes into an outbox that a relay owns. tool should be
// short and must not contain NUL bytes; an empty tool gives
// "operator:<UUID>".
func OperatorWriterID(tool string) string {
	if tool == "" {
		return OperatorWriterPrefix + newUUID()
	}
	return OperatorWriterPrefix + tool + ":" + newUUID()
}

// IsOperatorWriter reports whether writer is an operator's writer id: one
// made by OperatorWriterID, or by the CLI of an earlier version.
func IsOperatorWriter(writer string) bool {
	return strings.HasPrefix(writer, OperatorWriterPrefix) || strings.HasPrefix(writer, legacyOperatorPrefix)
}
