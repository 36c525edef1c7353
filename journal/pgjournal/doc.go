// Package pgjournal implements journal.Journal on a PostgreSQL table with
// pgx/v5: the table migrations/000001 creates, or one of the same shape
// named with WithTable.
//
//	pool, err := pgxpool.New(ctx, databaseURL)
//	…
//	j := pgjournal.New(pool)
//	err = j.Append(ctx, journal.Event{PersistenceID: "order-42", SequenceNr: 1, Payload: data})
//
// # Statements and round trips
//
// Every method is one round trip, and one statement apart from AppendNext
// (below). In pgx's default
// QueryExecModeCacheStatement, each connection prepares a statement (and
// describes the table for COPY) the first time it sees it, one more round
// trip then, and reuses it after; in the other modes pgx describes the
// table before every COPY. T is the quoted table name.
//
// Append sends the whole batch in one statement: a single event with
//
//	INSERT INTO T (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
//	VALUES ($1, $2, $3, $4, $5, $6)
//
// a small batch (under 128 events and 32 KiB of payload) with one INSERT
// of arrays, one per column, tags as one array literal per event:
//
//	INSERT INTO T (…) SELECT p, s, b, m, w, g::text[]
//	  FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[], $5::text[], $6::text[]) AS e(p, s, b, m, w, g)
//
// and a larger batch with COPY T (…) FROM STDIN (pgx's CopyFrom, binary
// format). The threshold comes from BenchmarkAppendInsertVsCopy. Append
// never reads before it writes: the primary key (persistence_id,
// sequence_nr) is the conflict check.
//
// Replay streams the rows of
//
//	SELECT sequence_nr, payload, manifest, writer_uuid, tags, written_at FROM T
//	 WHERE persistence_id = $1 AND sequence_nr BETWEEN $2 AND $3 AND NOT deleted
//	 ORDER BY sequence_nr LIMIT $4
//
// (LIMIT NULL, no limit, when max is math.MaxInt64 or more) one at a
// time, into reused variables, without collecting them; max == 0 or from
// > to yields nothing without I/O. Breaking out of the loop closes the
// rows and frees the connection, but pgx first reads and discards the
// rest of the result: pass max when only the first events are wanted.
//
// HighestSequenceNr is SELECT coalesce(max(sequence_nr), 0) … WHERE
// persistence_id = $1, and Last the Replay query ordered DESC with LIMIT
// 1: both one probe of the primary key index from the top, however long
// the stream (BenchmarkLastHistory).
//
// DeleteTo is one statement when toSeq is below the stream's highest
// sequence nr (pruning): a CTE finds the highest, a data-modifying CTE
// deletes the events up to toSeq below it, and the statement returns the
// highest. It needs DELETE and SELECT, not UPDATE. Only when toSeq reaches
// the highest does a second statement, an UPDATE, mark that row deleted,
// keeping its payload. The comment in New reasons through concurrent
// appends under READ COMMITTED; in short, the highest sequence nr never
// goes down and no event above toSeq is touched.
//
// Head (journal.HeadReader) reads the highest sequence number and the
// newest live row in one statement, so from one snapshot:
//
//	SELECT h.nr, l.… FROM (SELECT max(sequence_nr) AS nr FROM T WHERE persistence_id = $1) AS h
//	  LEFT JOIN LATERAL (the Last query) AS l ON true
//
// The offset store opens with it: a writer that commits between two
// separate reads cannot be half seen.
//
// AppendNext (journal.NextAppender) sends two statements in one round trip
// and one implicit transaction (a pgx batch, one Sync):
//
//	SELECT pg_advisory_xact_lock(1868985204, hashtext($1::text))
//	INSERT INTO T (…) SELECT $1, … WHERE NOT EXISTS
//	    (SELECT 1 FROM T WHERE persistence_id = $1 AND sequence_nr >= $2)
//
// The lock (two-key form, first key "ofst"; held until the transaction
// ends, so inside a caller's pgx.Tx until its commit) makes the writers of
// one stream check one after another. A statement reads the table as of
// its start: without the lock, a writer stalled in the middle of its
// insert could miss rows another writer committed at and above its number
// and then pruned, and land a row under them. Under READ COMMITTED and
// REPEATABLE READ the loser gets a conflict; under SERIALIZABLE it may get
// journal.ErrRolledBack instead (TestAppendNextStalledWriter runs all
// three). A DBTX of the caller's own that has no SendBatch gets the INSERT
// alone, without the lock.
//
// In a caller's pgx.Tx the INSERT also requires
// current_setting('transaction_isolation') to be neither REPEATABLE READ
// nor SERIALIZABLE, whose check would read the transaction's snapshot,
// which may be older than rows another writer committed and pruned before
// the lock. At those levels AppendNext reads the level, inserts, and
// returns journal.ErrUnverified; the caller checks the head through
// another connection before committing, as the offset store's SaveTx does
// (three more round trips, at those levels only).
//
// PersistenceIDs (journal.StreamLister) is a loose index scan: a
// recursive query that probes the primary key for the next
// persistence_id above the previous one, one index descent per stream,
// stopped by LIMIT, in the column's collation order. HighestSequenceNrs
// (journal.HighestReader) reads up to MaxHighestBatch streams per
// statement: unnest of the ids with a LATERAL max per id.
// HighestSequenceNrsBefore (journal.BeforeReader), the point-in-time read
// of a rewind, too: per id a backward walk of the primary key from the
// newest row to the first written before the given time, so its cost is
// the rows written since then, not the length of the streams. With
// ListOptions.Prefix the listing starts at the prefix and stops after the
// last id with it where the column's collation orders as bytes (read from
// the catalog once per Journal), and filters every id otherwise.
// StreamLags (journal.LagReader) sends MaxLagBatch positions per
// statement, all of a call pipelined in one round trip: a backward probe
// per position and a forward one per position behind.
//
// # Following many streams
//
// ReadFeed (journal.FeedReader) tells which streams moved since a cursor,
// from the column xact_id that migrations/000003 adds: the id of the
// top-level transaction that inserted the row, filled by its default
// (pg_current_xact_id()), so writers that do not know the column fill it
// too. A cursor is a pg_current_snapshot() text; a read takes the
// statement's own snapshot and reports, grouped by stream, the rows of the
// transactions that snapshot sees committed and the cursor's did not (two
// index scans of xact_id: ids from the cursor's xmax, and the ids the
// cursor saw in progress), and returns the snapshot as the next cursor:
//
//	WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS cur)
//	SELECT NULL, NULL, (SELECT cur::text FROM s) UNION ALL
//	(SELECT persistence_id, max(sequence_nr), NULL FROM (
//	     SELECT … FROM T WHERE xact_id >= prev_xmax AND xact_id < xmax(cur)
//	     UNION ALL
//	     SELECT … FROM T WHERE xact_id = ANY (prev's in progress that cur sees ended)) r
//	  GROUP BY persistence_id)
//
// Each transaction is reported by the one read whose snapshot first sees
// it committed: one held open across many others (so with an older
// written_at and older ids) is reported when it commits, never skipped; a
// rolled-back one never. The cost follows the rows committed since the
// cursor (and those of transactions begun since, still open, visited
// once), never the number of streams: an idle read is two index probes
// (BenchmarkReadFeedIdle). See feed.go for the reasoning.
//
// ReadStreams (journal.StreamsReader) reads up to MaxReadStreamsBatch
// streams per statement, each from its own position: unnest of the ids
// and positions WITH ORDINALITY, a LATERAL read of each with its
// per-stream LIMIT, ordered by ordinality (an incremental sort the
// planner does stream by stream) under the total LIMIT. Scan
// (journal.Scanner) is a range scan of the primary key from a key,
// streamed: a whole journal at the speed of one SELECT.
//
// # Citus
//
// On a Citus table distributed by persistence_id, make the journal with
// WithCitus. Every method except the listing and the heads names one
// persistence id and runs on one shard; AppendNext then sends its check
// and its plain insert as two one-shard statements (without it, Citus
// pulls the conditional insert's row through the coordinator: correct,
// slower). PersistenceIDs becomes a DISTINCT … ORDER BY … LIMIT pushed to
// every shard, HighestSequenceNrs, HighestSequenceNrsBefore and StreamLags
// a grouped read of the ids: multi-shard reads (HighestSequenceNrsBefore
// reads every row of the named streams on their shards). Write through
// the coordinator: AppendNext's advisory lock lives on the node a client
// is connected to, and so does the feed: the default of xact_id runs on
// the coordinator, so the column holds the coordinator's transaction ids.
//
// ReadFeed takes the coordinator's snapshot first (a statement of its
// own) and then reads the rows of the transactions it sees committed, on
// the workers. A transaction written to one worker commits there before it
// commits on the coordinator, so the feed reports it as on a single
// PostgreSQL. One written to several workers commits with two-phase
// commit, the workers' part just after the coordinator's (or, when a
// worker cannot be reached then, when Citus recovers it): a read in
// between may miss it, so FeedExact is false WithCitus, and a follower
// also reads its streams' heads now and then. ReadStreams sends one Replay
// statement per stream, routed to its shard, MaxReadStreamsBatch of them
// in one batch (Citus cannot push a LATERAL with a LIMIT down). Scan runs
// on every shard, each sending up to a page of rows for the coordinator to
// merge: correct, dearer per page than on one server.
//
// Citus begins the transaction on a worker at the coordinator's isolation
// level, at the transaction's first statement there. Under REPEATABLE READ
// or SERIALIZABLE that snapshot predates the lock when a caller's
// transaction reached the worker before, so the lock statement also
// returns current_setting('transaction_isolation') from the coordinator,
// and at those levels AppendNext, having inserted, returns
// journal.ErrUnverified: in a caller's pgx.Tx before its commit, as on a
// single PostgreSQL; on a pool or a connection once its implicit
// transaction has committed (there the check is the worker's first
// statement, so this only costs the caller a read of the head: the offset
// store reads it, and a head above its row fences it).
//
// # Atomicity and transactions
//
// Each statement is atomic on its own, so a batch is written whole or not
// at all without a transaction of pgjournal's own: it never sends BEGIN or
// COMMIT. Given a pgx.Tx, every method joins that transaction: appended
// events commit or roll back with the caller's other writes, and reads see
// the transaction's own writes. A failed statement (a conflict, say)
// aborts the caller's transaction, as any failed statement does; rolling
// back is the caller's job.
//
// BeginBounded begins such a transaction with server-side bounds for it
// alone (TxBounds: idle_in_transaction_session_timeout, lock_timeout,
// TCP timeouts), in the BEGIN's round trip, so that a client that
// vanishes in the middle of it does not leave its locks, AppendNext's
// stream lock among them, held until TCP keepalive gives up (hours by
// default). The reference relay begins every PublishTx transaction so.
//
// # Failover
//
// On a primary with synchronous standbys, prepare the pool with
// ConfigurePool (once, before pgxpool.NewWithConfig) and connect through a
// multi-host URL with target_session_attrs=read-write. ConfigurePool
// counts, per connection, the server's warnings that a commit's wait for
// the standbys was cancelled (PostgreSQL then keeps the commit and reports
// success): AppendNext on such a pool runs on one acquired connection and
// reports a write committed so with an error matching
// journal.ErrNotReplicated, and a Journal made on a transaction of it
// reports its commit so (Replicated). It also closes a connection on which
// a statement fails with 25006 (a demoted, read-only primary), so that the
// pool connects again, to the new primary; AppendNext and ReadReplicated
// close such a connection on any pool.
//
// ReadReplicated (journal.ReplicatedReader) runs a read on one connection
// and then, when asked, confirms it on the synchronous standbys with
//
//	SELECT pg_logical_emit_message(true, 'offsetstore', '')
//
// in autocommit on that connection: a transaction with an id and a WAL
// record of its own, whose commit waits for the standbys as the session's
// synchronous_commit says, and so covers every row committed before it on
// that server (a transaction with only an id, such as SELECT
// pg_current_xact_id(), commits without waiting). It costs nothing on the
// normal path: the offset store calls it only to settle a write whose
// outcome was unknown. A logical decoding client sees the message (prefix
// offsetstore, empty). WithCitus there is no confirmation: the rows live
// on the workers, whose standbys a commit on the coordinator does not wait
// for.
//
// A Journal is as safe for concurrent use as its DBTX: on a *pgxpool.Pool
// it is; a *pgx.Conn or pgx.Tx runs one statement at a time, so the
// caller must not use it concurrently, nor call the journal from inside a
// Replay loop (the connection is busy streaming).
//
// # Errors
//
// Invalid input (journal.ValidateEvents, journal.ValidatePersistenceID)
// fails with journal.ErrInvalidArgument before any I/O; a NUL byte never
// reaches the driver. A duplicate (persistence_id, sequence_nr), against
// a stored row or within the batch, fails Append with a
// *journal.ConflictError that matches journal.ErrSequenceConflict, names
// the duplicate event and wraps the *pgconn.PgError. The event is read
// from the error's detail, which PostgreSQL prints unquoted; the reading
// is checked against the batch, so persistence ids containing ", " or ")"
// are named right. Only the (persistence_id, sequence_nr) key counts: a
// violation of another unique index (an ordering column, say) is a plain
// error naming its constraint, never a conflict. A serialization failure
// (40001) or a deadlock (40P01) on a write is a *journal.RolledBackError
// matching journal.ErrRolledBack: nothing was written. Other errors are
// wrapped as "pgjournal: <op>: …".
//
// A persistence id longer than journal.MaxPersistenceIDLen (2 048 bytes)
// is refused before any I/O: the primary key's index cannot hold it. A nil
// handle given to New (or a nil *pgxpool.Pool) makes every method fail
// with journal.ErrInvalidArgument, never panic.
//
// An error caused by the end of the call's context matches ctx.Err() with
// errors.Is. Note what pgx does then: it closes the connection (the pool
// replaces it), but the server may still finish the statement, so a
// cancelled Append may have been written. Use HighestSequenceNr or Last to
// find out, or configure pgconn's CancelRequestContextWatcherHandler on
// the pool to have the server cancel the statement as well.
//
// # Table options
//
// WithTable(schema, table) names another table of the same shape; an
// empty schema follows the connection's search_path, an empty table means
// DefaultTable. Names are always quoted with pgx.Identifier and every
// value is a parameter, so a name with quotes, semicolons or spaces is
// just a name. The SQL is built once, in New. New cannot return an error,
// so a name PostgreSQL cannot hold (a NUL byte, invalid UTF-8, more than
// 63 bytes) makes every method fail with journal.ErrInvalidArgument before
// any I/O; ValidateTable runs the same check for callers that want the
// error first.
package pgjournal
