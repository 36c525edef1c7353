package pgjournal

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/outboxkit/offsetstore/journal"
)

var _ journal.FeedReader = (*Journal)(nil)

// The feed (journal.FeedReader) rests on the column xact_id that
// migrations/000003 adds: the id of the top-level transaction that
// inserted the row (pg_current_xact_id(), its default, so every writer
// fills it, knowing of it or not), indexed.
//
// A cursor is a snapshot, the text of pg_current_snapshot(): xmin:xmax:
// followed by the ids in progress. A transaction is visible in a snapshot
// when it committed before it: its id is below xmin, or below xmax and
// not in progress. A read from cursor prev takes a snapshot cur and reports
// the rows of the transactions visible in cur but not in prev, and cur is
// the next cursor. So each transaction is reported by exactly the read
// whose snapshot first sees it committed, whatever order the transactions
// began, took their ids or committed in, and however long one stayed open:
// a transaction in progress at prev is looked up again by id, one that
// began after prev is found by its id at or above prev's xmax. A
// transaction takes its id at its first write (the default takes it at
// the latest), and a subtransaction's rows carry the id of the top-level
// one (pg_current_xact_id()), which the snapshots list; a rolled-back
// transaction or subtransaction is never visible, and a prepared one
// (two-phase commit) is in progress until COMMIT PREPARED. The id is 64
// bits wide (epoch and id), so it never wraps around.
//
// Its cost: the index entries of the transactions that committed in
// between, and of those that began since and are still open (their rows,
// invisible, are visited once; a transaction in progress at prev that is
// still in progress is not visited again). Never a row per stream.
//
// Rows keep their xact_id when updated: DeleteTo's marking of the
// highest row is not reported. A row whose xact_id was written explicitly
// (a copy of another server's rows, a logical replica that replicates
// the column) is reported as its value says, which may be never: the feed
// must be read on the server where the rows are inserted.
//
// WithCitus, the default runs on the coordinator, so xact_id is the
// coordinator's transaction id, and the rows live on the workers. The
// read takes the coordinator's snapshot first (a statement of its own),
// then reads, on the workers, the rows of the transactions that snapshot
// sees and the previous one does not. A transaction that writes to one
// worker commits there before it commits on the coordinator, so its rows
// are readable once the coordinator sees it. One written to several
// workers commits with two-phase commit: the coordinator first, each
// worker's prepared transaction just after, or, if a worker cannot be
// reached then, when Citus recovers it; a read in between sees the
// transaction committed and its rows on that worker not yet, and the next
// read does not look again. FeedExact is then false: a reader that must
// see every event also reads the heads of its streams now and then.

// snapshot is a pg_snapshot: every transaction id below xmin has ended,
// none at or above xmax had begun, and xip lists those in between still
// in progress, ascending.
type snapshot struct {
	xmin, xmax uint64
	xip        []uint64
}

// parseSnapshot parses the text of a pg_snapshot ("xmin:xmax:xip,…").
func parseSnapshot(s string) (snapshot, bool) {
	a, rest, ok1 := strings.Cut(s, ":")
	b, list, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return snapshot{}, false
	}
	var snap snapshot
	var err error
	if snap.xmin, err = parseXid(a); err != nil {
		return snapshot{}, false
	}
	if snap.xmax, err = parseXid(b); err != nil || snap.xmax < snap.xmin {
		return snapshot{}, false
	}
	if list == "" {
		return snap, true
	}
	for x := range strings.SplitSeq(list, ",") {
		id, err := parseXid(x)
		if err != nil || id < snap.xmin || id >= snap.xmax || (len(snap.xip) > 0 && id <= snap.xip[len(snap.xip)-1]) {
			return snapshot{}, false
		}
		snap.xip = append(snap.xip, id)
	}
	return snap, true
}

// parseXid parses a transaction id in decimal, digits only.
func parseXid(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 10, 64)
}

// visible reports whether transaction x had committed (or ended) when
// snap was taken.
func (snap snapshot) visible(x uint64) bool {
	if x < snap.xmin {
		return true
	}
	if x >= snap.xmax {
		return false
	}
	_, inProgress := slices.BinarySearch(snap.xip, x)
	return !inProgress
}

// xidTexts returns ids as decimal texts (xid8 has no binary encoding in
// pgx; the server casts the text).
func xidTexts(ids []uint64) []string {
	out := make([]string, len(ids))
	for i, x := range ids {
		out[i] = strconv.FormatUint(x, 10)
	}
	return out
}

// sqlSnapshot takes the snapshot of a cursor.
const sqlSnapshot = `SELECT pg_current_snapshot()::text`

// feedSQL is ReadFeed in one statement (not WithCitus): the snapshot of
// the statement, returned in a row of its own (the one whose id is NULL),
// and the streams of the rows of the transactions it sees committed and
// the previous cursor did not: ids from $1 (prev's xmax) below its own
// xmax, and those of $2 (prev's in progress) that it sees ended. A
// snapshot taken by pg_current_snapshot() within the statement is the
// statement's own, so the rows it sees are exactly those the statement
// reads. from: no previous cursor (the whole journal). Exclude adds the
// prefix filter as the last parameter.
//
// The two sets of ids are two index scans under a UNION ALL (they are
// disjoint: prev's in progress lie below its xmax), which the planner
// plans as index scans also for a generic plan, where an OR of the two
// would lead it to a sequential scan.
func feedSQL(t string, from, exclude bool) string {
	filter := excludeFilter(from, exclude, `$3`)
	rows := `SELECT persistence_id, sequence_nr FROM ` + t + ` WHERE true` + filter
	if !from {
		rows = `SELECT persistence_id, sequence_nr FROM ` + t + `
        WHERE xact_id >= $1::text::xid8 AND xact_id < (SELECT pg_snapshot_xmax(cur) FROM s)` + filter + `
       UNION ALL
       SELECT persistence_id, sequence_nr FROM ` + t + `
        WHERE xact_id = ANY (ARRAY(SELECT x FROM unnest($2::text[]::xid8[]) AS x, s WHERE pg_visible_in_snapshot(x, s.cur)))` + filter
	}
	return `WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS cur)
SELECT NULL::text, NULL::bigint, (SELECT cur::text FROM s)
UNION ALL
(SELECT persistence_id, max(sequence_nr), NULL::text
   FROM (` + rows + `) AS r
  GROUP BY persistence_id)`
}

// excludeFilter is the prefix filter of a feed's read when exclude is
// set: the prefix is its only parameter, $1, without a previous cursor
// (from), else param.
func excludeFilter(from, exclude bool, param string) string {
	if !exclude {
		return ``
	}
	if from {
		param = `$1`
	}
	return ` AND NOT starts_with(persistence_id, ` + param + `::text)`
}

// feedCitusSQL is the read of ReadFeed WithCitus, pushed down to the
// shards, once the coordinator's snapshot cur was taken: the rows of the
// transactions cur sees committed ($4, tested on the workers, whose own
// snapshots know nothing of coordinator ids) and prev did not: ids from
// $1 (prev's xmax) to $2 (cur's), or among $3 (prev's in progress that
// cur sees ended). from: no previous cursor (every row). Exclude adds
// the prefix filter as the last parameter.
func feedCitusSQL(t string, from, exclude bool) string {
	filter := excludeFilter(from, exclude, `$5`)
	rows := `SELECT persistence_id, sequence_nr FROM ` + t + ` WHERE true` + filter
	if !from {
		rows = `SELECT persistence_id, sequence_nr FROM ` + t + `
        WHERE xact_id >= $1::text::xid8 AND xact_id < $2::text::xid8
          AND pg_visible_in_snapshot(xact_id, $4::text::pg_snapshot)` + filter + `
       UNION ALL
       SELECT persistence_id, sequence_nr FROM ` + t + `
        WHERE xact_id = ANY ($3::text[]::xid8[])
          AND pg_visible_in_snapshot(xact_id, $4::text::pg_snapshot)` + filter
	}
	return `SELECT persistence_id, max(sequence_nr)
  FROM (` + rows + `) AS r
 GROUP BY persistence_id`
}

// FeedStart implements journal.FeedReader: the current snapshot.
func (j *Journal) FeedStart(ctx context.Context) (journal.FeedCursor, error) {
	if j.err != nil {
		return "", j.err
	}
	var cur string
	if err := j.db.QueryRow(ctx, sqlSnapshot).Scan(&cur); err != nil {
		return "", j.interpretError(ctx, "feed start", err, nil)
	}
	return journal.FeedCursor(cur), nil
}

// FeedExact implements journal.FeedReader: true, but false WithCitus
// (see the package documentation).
func (j *Journal) FeedExact() bool { return !j.citus }

// ReadFeed implements journal.FeedReader in one statement (two WithCitus:
// the coordinator's snapshot, then the read on the workers), grouped by
// stream on the server: one row per stream that moved.
func (j *Journal) ReadFeed(ctx context.Context, since journal.FeedCursor, opts journal.FeedOptions, fn func(journal.Moved) error) (journal.FeedCursor, error) {
	if err := journal.ValidateFeedOptions(opts); err != nil {
		return since, err
	}
	from := since == ""
	var prev snapshot
	if !from {
		var ok bool
		if prev, ok = parseSnapshot(string(since)); !ok {
			return since, &journal.InvalidArgumentError{Field: "feed cursor", Reason: "is not one this journal returned (a pg_snapshot's text)"}
		}
	}
	if j.err != nil {
		return since, j.err
	}
	exclude := opts.ExcludePrefix != ""
	if j.citus {
		return j.readFeedCitus(ctx, since, from, prev, opts, fn)
	}
	var args []any
	if !from {
		args = append(args, strconv.FormatUint(prev.xmax, 10), xidTexts(prev.xip))
	}
	if exclude {
		args = append(args, opts.ExcludePrefix)
	}
	rows, err := j.db.Query(ctx, feedSQL(j.ident.Sanitize(), from, exclude), args...)
	if err != nil {
		return since, j.interpretError(ctx, "read feed", err, nil)
	}
	defer rows.Close()
	var (
		pid  *string
		nr   *int64
		snap *string
		next journal.FeedCursor
	)
	for rows.Next() {
		if err := rows.Scan(&pid, &nr, &snap); err != nil {
			return since, j.interpretError(ctx, "read feed", err, nil)
		}
		if pid == nil {
			if snap != nil {
				next = journal.FeedCursor(*snap)
			}
			continue
		}
		if err := fn(journal.Moved{PersistenceID: *pid, Highest: uint64(*nr)}); err != nil {
			return since, err
		}
	}
	if err := rows.Err(); err != nil {
		return since, j.interpretError(ctx, "read feed", err, nil)
	}
	if next == "" {
		return since, errors.New("pgjournal: read feed: the statement returned no snapshot")
	}
	return next, nil
}

// readFeedCitus is ReadFeed WithCitus.
func (j *Journal) readFeedCitus(ctx context.Context, since journal.FeedCursor, from bool, prev snapshot, opts journal.FeedOptions, fn func(journal.Moved) error) (journal.FeedCursor, error) {
	var text string
	if err := j.db.QueryRow(ctx, sqlSnapshot).Scan(&text); err != nil {
		return since, j.interpretError(ctx, "read feed", err, nil)
	}
	cur, ok := parseSnapshot(text)
	if !ok {
		return since, errors.New("pgjournal: read feed: the server returned a snapshot that does not parse: " + text)
	}
	var args []any
	if !from {
		var ended []uint64
		for _, x := range prev.xip {
			if cur.visible(x) {
				ended = append(ended, x)
			}
		}
		args = append(args, strconv.FormatUint(prev.xmax, 10), strconv.FormatUint(cur.xmax, 10), xidTexts(ended), text)
	}
	if opts.ExcludePrefix != "" {
		args = append(args, opts.ExcludePrefix)
	}
	rows, err := j.db.Query(ctx, feedCitusSQL(j.ident.Sanitize(), from, opts.ExcludePrefix != ""), args...)
	if err != nil {
		return since, j.interpretError(ctx, "read feed", err, nil)
	}
	defer rows.Close()
	var (
		pid string
		nr  int64
	)
	for rows.Next() {
		if err := rows.Scan(&pid, &nr); err != nil {
			return since, j.interpretError(ctx, "read feed", err, nil)
		}
		if err := fn(journal.Moved{PersistenceID: pid, Highest: uint64(nr)}); err != nil {
			return since, err
		}
	}
	if err := rows.Err(); err != nil {
		return since, j.interpretError(ctx, "read feed", err, nil)
	}
	return journal.FeedCursor(text), nil
}
