package leader

import (
	"crypto/sha256"
	"encoding/binary"
)

// keyNamespace is hashed before the outbox name, so that the keys of this
// package do not meet the advisory locks an application derives from the
// same names in another way.
const keyNamespace = "offsetstore/leader\x00"

// Key returns the advisory lock key of outbox: the first 8 bytes of
// SHA-256("offsetstore/leader\x00" + outbox), big-endian, as a signed
// 64-bit integer. It is computed in Go, so it is the same on every server
// version and platform, forever; relays of different versions of this
// module elect against each other.
//
// An operator finds the holder with
//
//	SELECT pid FROM pg_locks
//	 WHERE locktype = 'advisory' AND objsubid = 1 AND granted
//	   AND (classid::bigint << 32 | objid::bigint) = <Key>
//	   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
//
// Advisory locks are per database: relays of one outbox must connect to
// the same database (the one that holds its journal). The single-bigint
// form of pg_advisory_lock stores the high and low 32 bits in classid and
// objid, with objsubid 1; the two-int4 form uses objsubid 2, so keys of
// that form never collide with these.
//
// Two outbox names may share a key: with n outboxes on one server the
// chance is about n²/2⁶⁵ (about one in 10¹³ for 2 000 outboxes). A collision is
// never unsafe: the two outboxes then share one leadership, so one relay
// waits for the other's outbox; fencing in the store stays per outbox.
func Key(outbox string) int64 {
	h := sha256.Sum256([]byte(keyNamespace + outbox))
	return int64(binary.BigEndian.Uint64(h[:8]))
}
