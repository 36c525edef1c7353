package pgjournal

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/journal"
)

// DBTX is what a Journal needs of its database handle. *pgxpool.Pool,
// *pgx.Conn and pgx.Tx all satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// DefaultTable is the table a Journal uses unless WithTable names another:
// the one migrations/000001 creates.
const DefaultTable = "journal"

// maxIdentifierLen is PostgreSQL's limit on the length of an identifier in
// bytes (NAMEDATALEN - 1). A longer name would be truncated silently.
const maxIdentifierLen = 63

// Append's choice of statement, from BenchmarkAppendInsertVsCopy: time of
// COPY over time of INSERT for the same batch, lowest and highest of four
// runs on a 2-core machine under other load.
//
//	1 event of 100 B      1.15–1.47  single-row INSERT … VALUES
//	1 event of 25 KiB     1.22–1.28  single-row INSERT … VALUES
//	10 events of 100 B    1.18–1.28  INSERT … unnest
//	100 events of 100 B   0.98–1.08  INSERT … unnest
//	1000 events of 100 B  0.67–1.05  COPY
//	10 events of 16 KiB   0.78–0.85  COPY
//
// COPY costs a fixed ~0.2–0.4 ms more (pgx runs it through an io.Pipe and
// a goroutine, as a simple-protocol statement the server parses each
// time) and then less per row and per byte: the INSERT carries each column
// as one array parameter, which both sides build whole in memory (1.7 MB
// of Go allocations for 1000 events of 100 B, against 0.45 MB for COPY)
// and which PostgreSQL caps at 1 GB. Between 100 and 1000 events of 100 B
// the two are within noise of each other; the count threshold sits there.
// The byte threshold sits where 10 events of 4 KiB leaned towards COPY in
// exploratory runs (0.87–0.97). A single event stays on INSERT whatever
// its size (at 256 KiB, COPY measured 0.94: even).
const (
	defaultCopyThreshold = 128
	defaultCopyMinBytes  = 32 << 10
)

// Option configures a Journal.
type Option func(*config)

type config struct {
	schema string
	table  string
	citus  bool
}

// WithCitus tells the Journal that its table is a Citus distributed table
// (distributed by persistence_id). AppendNext then sends its check and its
// insert as two statements, each routed to the stream's shard, in the same
// round trip, instead of one INSERT … SELECT … WHERE NOT EXISTS, which
// Citus runs by pulling the row through the coordinator (a second trip of
// the payload to a worker). The semantics are the same; on a single
// PostgreSQL the one statement is the faster. Defaults to off.
func WithCitus() Option { return func(c *config) { c.citus = true } }

// WithTable makes the Journal use table in schema. An empty schema means
// the first schema of the connection's search_path that has the table; an
// empty table means DefaultTable. Both names are quoted as identifiers,
// never interpreted: "Journal" and "journal" are different tables. The
// table must have the columns of the one migrations/000001 creates, and
// its primary key must be (persistence_id, sequence_nr).
//
// A name that PostgreSQL cannot hold (a NUL byte, invalid UTF-8, or more
// than 63 bytes, which PostgreSQL would truncate silently) makes every
// method of the Journal fail with an error matching
// journal.ErrInvalidArgument, before any I/O. Defaults to WithTable("",
// DefaultTable).
func WithTable(schema, table string) Option {
	return func(c *config) {
		c.schema = schema
		c.table = table
	}
}

// Journal is a journal.Journal on a PostgreSQL table, through pgx/v5.
//
// It is as safe for concurrent use as its DBTX: a *pgxpool.Pool is, a
// *pgx.Conn and a pgx.Tx are not (they run one statement at a time).
type Journal struct {
	db    DBTX
	err   error // an invalid option, returned by every method
	citus bool  // WithCitus
	table string
	ident pgx.Identifier

	copyThreshold int // events
	copyMinBytes  int // of payload

	collation *collation // of persistence_id, for listings with a prefix; shared by copies

	// watched is, for a Journal made on a transaction whose connection
	// ConfigurePool prepared, that connection's state, and watchedFrom its
	// warning count then (see Replicated).
	watched     *connState
	watchedFrom int64

	statements
}

// statements are a Journal's SQL texts for its table, built once per
// table (see statementsFor): a journal made per transaction, as SaveTx's
// callers make them, costs no string building.
type statements struct {
	sqlInsertOne  string
	sqlLockStream string
	// sqlLockStreamCitus: the lock, and the isolation level it ran at,
	// both on the coordinator.
	sqlLockStreamCitus string
	sqlCheckNext       string
	// sqlInsertNext: AppendNext's insert, READ COMMITTED only;
	// sqlInsertNextAlone: without that condition (see buildStatements).
	sqlInsertNextAlone string
	sqlInsertNext      string
	// The same for AppendSuccessor: the row before must be the newest,
	// live.
	sqlCheckSucc       string
	sqlInsertSuccAlone string
	sqlInsertSucc      string
	// next and succ are the rules of AppendNext and AppendSuccessor.
	next, succ     appendRule
	sqlInsert      string
	sqlReplay      string
	sqlHighest     string
	sqlLast        string
	sqlHead        string
	sqlDelete      string
	sqlMarkDeleted string
	sqlChain       string
}

var (
	_ journal.Journal           = (*Journal)(nil)
	_ journal.NextAppender      = (*Journal)(nil)
	_ journal.SuccessorAppender = (*Journal)(nil)
	_ journal.HeadReader        = (*Journal)(nil)
)

// copyColumns are the columns Append writes, in the order of its values.
// deleted and written_at take their defaults.
var copyColumns = []string{"persistence_id", "sequence_nr", "payload", "manifest", "writer_uuid", "tags"}

// New returns a Journal that runs its statements on db: a pool, a
// connection, or a caller's transaction, which every call then joins.
func New(db DBTX, opts ...Option) *Journal {
	c := config{table: DefaultTable}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if c.table == "" {
		c.table = DefaultTable
	}
	j := &Journal{db: db, table: c.table, citus: c.citus, copyThreshold: defaultCopyThreshold, copyMinBytes: defaultCopyMinBytes, collation: &collation{}}
	if isNil(db) {
		j.err = &journal.InvalidArgumentError{Field: "database handle", Reason: "is nil (pass a *pgxpool.Pool, *pgx.Conn or pgx.Tx)"}
	} else if err := ValidateTable(c.schema, c.table); err != nil {
		j.err = err
	}
	if c.schema == "" {
		j.ident = pgx.Identifier{c.table}
	} else {
		j.ident = pgx.Identifier{c.schema, c.table}
	}
	if j.err == nil { // an invalid name runs no statement: none are built or cached
		j.statements = *statementsFor(j.ident.Sanitize())
		j.watch(db)
	}
	return j
}

// statementCache holds the statements of every table a Journal was made
// for, by its quoted name: a program names few tables.
var statementCache sync.Map // string → *statements

// statementsFor returns the statements for the table whose quoted name is
// t, building them on first use.
func statementsFor(t string) *statements {
	if st, ok := statementCache.Load(t); ok {
		return st.(*statements)
	}
	st, _ := statementCache.LoadOrStore(t, buildStatements(t))
	return st.(*statements)
}

func buildStatements(t string) *statements {
	st := &statements{}
	st.sqlInsertOne = `INSERT INTO ` + t + ` (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
VALUES ($1, $2, $3, $4, $5, $6)`
	// AppendNext: the row, only while no event at or above its sequence
	// number exists (the highest row is never removed, only marked
	// deleted, so this is HighestSequenceNr < seq). In one round trip and
	// one implicit transaction: the stream's lock, then the conditional
	// insert. WithCitus: the lock, a check that fails the transaction when
	// the stream is ahead (a cast of a text that is no number: plain SQL
	// has no other way to raise), and the plain single-row insert, each a
	// one-shard statement.
	//
	// Under READ COMMITTED (and READ UNCOMMITTED, the same in
	// PostgreSQL) the insert's snapshot is taken after the lock. Under
	// REPEATABLE READ or SERIALIZABLE it is older: the transaction's, in a
	// caller's transaction (perhaps taken long before the lock, a peer
	// having saved and pruned since); one taken at the lock statement,
	// before the lock was granted, in an implicit transaction. There the
	// check can pass where it should not, so sqlInsertNext stands aside
	// (inserts nothing) and AppendNext reads the isolation level. On a
	// pool it then writes in a READ COMMITTED transaction of its own; on
	// any other handle (a pgx.Tx, a connection that may be inside a BEGIN
	// of the caller's) it inserts with sqlInsertNextAlone and reports
	// journal.ErrUnverified: the caller reads the stream's head through
	// another connection before committing, while the transaction holds
	// the lock.
	st.sqlLockStream = `SELECT pg_advisory_xact_lock(` + strconv.Itoa(streamLockClass) + `, hashtext($1::text))`
	// On Citus the check runs on the stream's worker, in a transaction
	// Citus began there at the coordinator's isolation level: under
	// REPEATABLE READ or SERIALIZABLE at the transaction's first statement
	// on that worker, which may precede the lock. The lock statement, which
	// runs on the coordinator, reports the level, and AppendNext then
	// reports journal.ErrUnverified after its insert.
	st.sqlLockStreamCitus = `SELECT pg_advisory_xact_lock(` + strconv.Itoa(streamLockClass) + `, hashtext($1::text)), current_setting('transaction_isolation')`
	st.sqlCheckNext = `SELECT CASE WHEN h.nr >= $2::bigint THEN ('` + supersededMark + `' || h.nr)::bigint END
  FROM (SELECT max(sequence_nr) AS nr FROM ` + t + ` WHERE persistence_id = $1::text) AS h`
	insertNext := `INSERT INTO ` + t + ` (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
SELECT $1::text, $2::bigint, $3::bytea, $4::text, $5::text, $6::text[]
 WHERE NOT EXISTS (SELECT 1 FROM ` + t + ` WHERE persistence_id = $1::text AND sequence_nr >= $2::bigint)`
	st.sqlInsertNextAlone = insertNext
	const notSnapshotBeforeLock = `
   AND current_setting('transaction_isolation') NOT IN ('repeatable read', 'serializable')`
	st.sqlInsertNext = insertNext + notSnapshotBeforeLock
	// AppendSuccessor: the same, and the row before is there and live
	// (the highest row is never removed, only marked deleted, so with no
	// row at or above $2 this makes it the newest).
	base := `
   AND EXISTS (SELECT 1 FROM ` + t + ` WHERE persistence_id = $1::text AND sequence_nr = $2::bigint - 1 AND NOT deleted)`
	st.sqlInsertSuccAlone = insertNext + base
	st.sqlInsertSucc = insertNext + base + notSnapshotBeforeLock
	// WithCitus the check of the row before is left out under REPEATABLE
	// READ and SERIALIZABLE, whose snapshot may predate it (the writer's
	// own newest row): AppendNext reports journal.ErrUnverified there, and
	// the writer checks the stream outside.
	st.sqlCheckSucc = `SELECT CASE WHEN h.nr >= $2::bigint OR (
         current_setting('transaction_isolation') NOT IN ('repeatable read', 'serializable')
         AND (h.nr IS DISTINCT FROM $2::bigint - 1 OR NOT EXISTS (
              SELECT 1 FROM ` + t + ` WHERE persistence_id = $1::text AND sequence_nr = $2::bigint - 1 AND NOT deleted)))
       THEN ('` + supersededMark + `' || coalesce(h.nr, 0))::bigint END
  FROM (SELECT max(sequence_nr) AS nr FROM ` + t + ` WHERE persistence_id = $1::text) AS h`
	st.sqlInsert = `INSERT INTO ` + t + ` (persistence_id, sequence_nr, payload, manifest, writer_uuid, tags)
SELECT p, s, b, m, w, g::text[]
  FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[], $5::text[], $6::text[]) AS e(p, s, b, m, w, g)`

	const columns = `sequence_nr, payload, manifest, writer_uuid, tags, written_at`
	st.sqlReplay = `SELECT ` + columns + ` FROM ` + t + `
 WHERE persistence_id = $1 AND sequence_nr BETWEEN $2 AND $3 AND NOT deleted
 ORDER BY sequence_nr
 LIMIT $4`
	st.sqlLast = `SELECT ` + columns + ` FROM ` + t + `
 WHERE persistence_id = $1 AND NOT deleted
 ORDER BY sequence_nr DESC
 LIMIT 1`
	// Head: the highest sequence number and the newest live row in one
	// statement, so one snapshot: always exactly one row, the live columns
	// NULL when there is no live row.
	st.sqlHead = `SELECT h.nr, l.sequence_nr, l.payload, l.manifest, l.writer_uuid, l.tags, l.written_at
  FROM (SELECT max(sequence_nr) AS nr FROM ` + t + ` WHERE persistence_id = $1) AS h
  LEFT JOIN LATERAL (
       SELECT ` + columns + ` FROM ` + t + `
        WHERE persistence_id = $1 AND NOT deleted
        ORDER BY sequence_nr DESC
        LIMIT 1) AS l ON true`
	st.sqlHighest = `SELECT coalesce(max(sequence_nr), 0) FROM ` + t + ` WHERE persistence_id = $1`

	// DeleteTo is one statement that needs only DELETE (and SELECT): it
	// removes the rows up to $2 below the highest and returns the highest
	// it saw. Only when $2 reaches that highest row does a second statement
	// mark it deleted, so a service that prunes (as the offset store does,
	// always below its newest snapshot) needs no UPDATE grant and one round
	// trip.
	//
	// Under READ COMMITTED with concurrent writers:
	//   - An event appended by a transaction that commits after the
	//     statement's snapshot is invisible to it: it is neither deleted nor
	//     taken as the highest. If it is above the highest we saw, the row
	//     we then mark deleted is no longer the highest; it stays hidden from
	//     Replay and Last, HighestSequenceNr is the new event, and the next
	//     DeleteTo removes the marked row. Nothing is lost and the highest
	//     never goes down. If it is below to (a gap filled late), it
	//     survives, as if it had been appended after the DeleteTo.
	//   - The row we take as the highest is never removed, only marked, so
	//     HighestSequenceNr cannot drop even if the appends above it roll
	//     back.
	//   - A concurrent DeleteTo of the same stream: the second one waits for
	//     the row locks of the first, then re-checks its WHERE on the rows
	//     left (EvalPlanQual): a row already deleted is skipped, a row
	//     already marked fails NOT deleted and is not written again.
	//   - If marking fails after the delete, DeleteTo returns the error and
	//     a retry finishes the job: both steps are idempotent.
	st.sqlDelete = `WITH highest AS (
    SELECT max(sequence_nr) AS nr FROM ` + t + ` WHERE persistence_id = $1
), below AS (
    DELETE FROM ` + t + `
     WHERE persistence_id = $1 AND sequence_nr <= $2
       AND sequence_nr < (SELECT nr FROM highest)
)
SELECT nr FROM highest`
	st.sqlChain = chainSQL(t)
	st.sqlMarkDeleted = `UPDATE ` + t + ` SET deleted = true
 WHERE persistence_id = $1 AND sequence_nr = $2 AND NOT deleted`
	st.next = appendRule{insert: st.sqlInsertNext, alone: st.sqlInsertNextAlone, check: st.sqlCheckNext}
	st.succ = appendRule{insert: st.sqlInsertSucc, alone: st.sqlInsertSuccAlone, check: st.sqlCheckSucc}
	return st
}

// ValidateTable reports whether schema and table can name the journal's
// table as WithTable takes them: neither may contain a NUL byte, be invalid
// UTF-8 or be longer than 63 bytes (PostgreSQL would truncate it). An empty
// schema (the search_path) and an empty table (DefaultTable) are valid.
// The error matches journal.ErrInvalidArgument. New runs the same check.
func ValidateTable(schema, table string) error {
	if err := checkIdentifier("schema name", schema); err != nil {
		return err
	}
	return checkIdentifier("table name", table)
}

// isNil reports whether db is nil, or an interface holding a nil pointer
// (a *pgxpool.Pool never set).
func isNil(db DBTX) bool {
	if db == nil {
		return true
	}
	v := reflect.ValueOf(db)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// checkIdentifier rejects what PostgreSQL cannot hold as the identifier
// the caller meant.
func checkIdentifier(field, name string) error {
	switch {
	case strings.IndexByte(name, 0) >= 0:
		return &journal.InvalidArgumentError{Field: field, Reason: "contains a NUL byte"}
	case !utf8.ValidString(name):
		return &journal.InvalidArgumentError{Field: field, Reason: "is not valid UTF-8"}
	case len(name) > maxIdentifierLen:
		return &journal.InvalidArgumentError{Field: field, Reason: "is longer than 63 bytes (PostgreSQL would truncate it)"}
	}
	return nil
}

// nonNil returns b, or an empty slice for nil: pgx sends a nil []byte as
// NULL, and payload is NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// check validates what every read and DeleteTo need before any I/O.
func (j *Journal) check(pid string) error {
	if err := journal.ValidatePersistenceID(pid); err != nil {
		return err
	}
	return j.err
}
