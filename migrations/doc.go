// Package migrations holds the SQL schema of offsetstore as golang-migrate
// files and applies them.
//
// # Files
//
// FS embeds NNNNNN_name.up.sql / .down.sql pairs. 000001 creates the journal
// table:
//
//	journal(persistence_id text, sequence_nr bigint > 0, payload bytea,
//	        manifest text, writer_uuid text, deleted boolean, tags text[],
//	        written_at timestamptz, primary key (persistence_id, sequence_nr))
//
// # Applying
//
// From Go, call Up at start-up; it is idempotent and safe to run from
// several processes at once (golang-migrate takes an advisory lock). With the
// migrate CLI (built with -tags pgx5 or postgres), point it at the same files
// and this package's migrations table:
//
//	migrate -path migrations \
//	  -database 'pgx5://user:pass@host:5432/db?x-migrations-table=offsetstore_schema_migrations' up
//
// Both record their progress in MigrationsTable, so either can take over from
// the other. Migrations run as the table's owner; the service itself needs
// only SELECT, INSERT and DELETE on the journal (UPDATE too for a DeleteTo
// that reaches a stream's highest event, which the offset store never does).
package migrations
