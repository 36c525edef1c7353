package journal

import "context"

// FeedCursor marks a point of a journal's feed (FeedReader): a ReadFeed
// from it reports what was committed after that point. Its text is the
// backend's and opaque to callers: keep it, pass it back, compare it with
// "" only. The zero value, "", is the beginning of the journal: a ReadFeed
// from it reports every stream.
//
// A cursor belongs to the journal (for pgjournal, the database server)
// that returned it.
type FeedCursor string

// FeedOptions select what a ReadFeed reports.
type FeedOptions struct {
	// ExcludePrefix, when not empty, leaves out every stream whose id
	// starts with it, byte for byte, as ListOptions.ExcludePrefix does: a
	// relay passes store.PersistenceIDPrefix so that the offset store's own
	// saves are not reported. Defaults to "" (nothing excluded).
	ExcludePrefix string
}

// Moved is one stream reported by ReadFeed.
type Moved struct {
	// PersistenceID names the stream.
	PersistenceID string
	// Highest is the highest sequence number among the stream's rows
	// committed in the span the read covers, deleted rows included. Events
	// at or below it may have been committed before the span (a stream's
	// rows need not commit in sequence order) and rows committed later may
	// lie above it: a reader reads the stream from its own position with
	// Replay or StreamsReader, not from the feed.
	Highest uint64
}

// FeedReader is implemented by journals that tell which streams moved
// since a point, at a cost that follows the rows committed since then
// rather than the number of streams: a relay learns from it which streams
// to read, and finds new streams, without reading every stream's head.
//
// The guarantee: in a chain of reads, each ReadFeed given the cursor the
// previous one returned (the first given FeedStart's or ""), every row
// committed after the first cursor is reported, as its stream's Moved, by
// at least one read of the chain that returns after the commit; unless
// FeedExact reports false (see there). Commits are reported in the read
// during which they become visible, whatever order their transactions
// began, took their sequence numbers or wrote their written_at in: a
// transaction held open across many others is reported when it commits,
// not skipped because newer rows were reported before it. A rolled-back
// transaction is never reported.
type FeedReader interface {
	// FeedStart returns a cursor at the feed's end now: a ReadFeed from it
	// reports what commits after FeedStart returned (and may report what
	// committed while it ran).
	FeedStart(ctx context.Context) (FeedCursor, error)

	// ReadFeed calls fn once for each stream that has rows committed
	// after since (FeedStart's cursor, a cursor an earlier ReadFeed
	// returned, or "" for every stream), in no particular order, and then
	// returns the cursor to read from next. The next read reports what
	// commits after this one; a backend may report again a stream whose
	// rows it reported already (a reader compares Highest with its own
	// position).
	//
	// A stream whose rows committed after since were all removed by
	// DeleteTo before the read may or may not be reported. Marking a
	// stream's highest row deleted (DeleteTo reaching it) is not a move.
	//
	// An error of fn stops the read: ReadFeed returns it, with since. A
	// cursor that is not one this backend returned, and opts whose
	// ExcludePrefix is not valid UTF-8 without NUL bytes, fail with
	// ErrInvalidArgument before any I/O.
	ReadFeed(ctx context.Context, since FeedCursor, opts FeedOptions, fn func(Moved) error) (FeedCursor, error)

	// FeedExact reports whether every commit is reported by the reads as
	// the FeedReader guarantee says. A backend that returns false may
	// miss a commit that became readable only after a read had passed
	// it (pgjournal WithCitus: a transaction written to several workers
	// with two-phase commit, whose rows become visible on a worker after
	// the coordinator has committed); a reader that must see every event
	// then also reads the heads of its streams now and then
	// (HighestReader), or the feed again from an older cursor.
	FeedExact() bool
}

// ValidateFeedOptions checks opts as FeedReader.ReadFeed requires. The
// error matches ErrInvalidArgument.
func ValidateFeedOptions(opts FeedOptions) error {
	return validateText("excluded prefix", opts.ExcludePrefix)
}
