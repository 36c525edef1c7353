// Command offsetstore inspects and operates the offsets that outbox relays
// keep in PostgreSQL with package store. It reaches the database only
// through the library (pgjournal, store, migrations): no SQL of its own,
// and no Docker client (the demo is cmd/offsetstore-demo).
//
// # Connection
//
// Every command that needs a database takes the connection from
// --database-url, else $DATABASE_URL, else the usual PG* variables (PGHOST,
// PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE …, as pgx reads them).
// A postgres://, postgresql:// or pgx5:// URL or a keyword/value string is
// accepted; x-… parameters meant for the migrate CLI are ignored
// (golang-migrate's FilterCustomQuery). The
// journal table is journal on the search_path unless --table names
// another, as [schema.]table; names are taken literally (case included)
// and quoted as identifiers, and a name containing a dot is written in
// double quotes: --table '"ops.v2".journal'.
//
// # Commands
//
//	show OUTBOX                 the newest snapshot: seq, writer, written_at and the offsets by key
//	history OUTBOX              the retained snapshot rows: seq, written_at, writer, keys, bytes
//	lag OUTBOX                  per key, the source stream's highest sequence nr minus the offset;
//	                            --all-streams adds the streams the outbox has no key for yet
//	export OUTBOX               the newest snapshot as JSON that import accepts
//	rewind OUTBOX KEY=N…        set keys to offsets, lower ones included
//	rewind OUTBOX MODE KEYS     reset keys as Kafka's consumer groups are: MODE is
//	                            --to-datetime T, --by-duration D, --shift-by N,
//	                            --to-earliest or --to-latest; KEYS are keys named,
//	                            --keys-from FILE or --all-keys
//	forget OUTBOX KEY…          drop keys, so their streams are followed from the start
//	import OUTBOX FILE          set the offsets of a JSON file (- for stdin)
//	migrate up|down|version     the embedded schema migrations
//
// rewind, forget and import are dry runs unless --apply is given: they
// print the change as a diff of offsets and write nothing. With --apply
// they write one new snapshot through store.Replace, as a writer of its own
// that prunes nothing (store.WithoutPruning): every snapshot the relay's
// retention kept stays, and the relay prunes at its own next write. A relay
// running on the outbox is fenced (store.ErrFenced) at its next save and
// must reopen the outbox, which loads the operator's change. --if-seq S
// refuses, writing nothing, unless the outbox's newest snapshot is still S,
// so that a change is applied only to the state it was prepared on.
//
// A reset mode reads what it needs of the source streams through the
// journal, in batched round trips: the heads (--to-latest, --shift-by,
// which keeps each key within 0 and its head) or the highest sequence
// numbers written before T (--to-datetime, --by-duration: written_at < T,
// so an event written at T exactly is published again; pgjournal reads
// MaxHighestBatch streams per statement, each from its newest row down).
// A key whose stream has no row at all has head 0. The dry run shows each
// key's move in events and how many events the relay publishes again.
//
// Offsets are whole numbers from 0 to 18446744073709551615, the snapshot
// format's u64, so that every state the store can hold goes through export
// and import unchanged. import reads JSON strictly: invalid UTF-8, a
// duplicate name or a \u escape that is not valid UTF-16 (a lone
// surrogate, which encoding/json would turn into U+FFFD) is refused.
//
// # Output and exit status
//
// Results go to standard output, errors to standard error. Output is
// ordered deterministically (keys sorted byte-wise, lag largest first),
// times are UTC, and nothing is coloured. show, history and lag
// print aligned tables, or JSON with --json. A key that contains a space,
// a quote, a backslash or a character that is not printable is shown
// quoted, in Go syntax, in tables.
//
// The exit status is 0 on success, 1 on an error, 2 on a usage error (an
// unknown flag, a missing argument, a malformed KEY=N, an invalid name or
// import file), 3 when a write is refused because the outbox moved
// (--if-seq did not match, or another writer took the next snapshot first:
// fenced), and 130 when interrupted (Ctrl-C, SIGTERM).
package main
