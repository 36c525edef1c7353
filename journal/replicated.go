package journal

import (
	"context"
	"errors"
)

// ErrNotReplicated is matched by the error of a write that the server
// committed, and reported committed, while warning that it had stopped
// waiting for its synchronous standbys (the wait was cancelled): the write
// is on the server and visible there, but may be missing from the standby
// a failover promotes. Treat it as a write whose outcome is unknown, and
// confirm it (ReplicatedReader) before relying on it.
var ErrNotReplicated = errors.New("journal: committed, but not known to be on the synchronous standbys")

// ReplicatedReader is implemented by journals on a server that can have
// synchronous standbys, to read rows and learn that they are on those
// standbys: a row read back after a write whose outcome was unknown may be
// visible on the server and still missing from its standbys (PostgreSQL
// keeps a commit whose wait for them was cancelled), and a failover would
// lose it.
type ReplicatedReader interface {
	// ReadReplicated runs read with a journal bound to one connection, so
	// one server, and when read returns confirm true (and no error), then
	// confirms on that same connection that everything read is on the
	// synchronous standbys: it commits a transaction of its own that
	// waits for them as the session's synchronous_commit says. Every row
	// read was committed on that server before that transaction, so when
	// its commit returns, the standbys have the rows too.
	//
	// It returns read's error; or the confirmation's, an error matching
	// ErrNotReplicated when the server reported that it stopped waiting,
	// or another (the connection lost, ctx done) when the outcome is
	// unknown; or nil. With confirm false nothing more is done. Where no
	// synchronous standby is configured, the confirmation returns at once.
	// The journal given to read is valid only during the call. A journal
	// that cannot confirm on the handle it was made on fails with an
	// error matching ErrInvalidArgument without calling read.
	ReadReplicated(ctx context.Context, read func(j Journal) (confirm bool, err error)) error
}

// ReplicationReporter is implemented by journals bound to a caller's
// transaction (pgjournal.New(tx)) whose connection reports the server's
// warnings, to tell after the transaction's commit returned nil whether
// that commit is known to be on the synchronous standbys.
type ReplicationReporter interface {
	// Replicated returns an error matching ErrNotReplicated when the
	// server warned, on the transaction's connection since the journal was
	// made, that it stopped waiting for its synchronous standbys; nil
	// otherwise, and when the connection does not report it.
	Replicated() error
}
