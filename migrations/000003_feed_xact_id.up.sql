-- The journal's feed (pgjournal's ReadFeed): each row records the id of the
-- top-level transaction that inserted it, filled by the default, so writers
-- that do not know the column (older releases, other services, COPY without
-- it) fill it too. A reader tells which transactions committed since its
-- last read from two pg_current_snapshot() values, so a transaction that
-- commits after newer ones is read when it commits, never skipped.
--
-- pg_current_xact_id() is STABLE, so adding the column is a catalog change:
-- the table is not rewritten, and every existing row reads as written by
-- this migration's transaction. The index is built with the table locked
-- against writes; on a large journal, create it first with
--   CREATE INDEX CONCURRENTLY journal_xact_id_idx ON journal (xact_id);
-- (after adding the column as below) and this migration keeps it.
--
-- One statement (the migrate driver sends a file as one prepared statement).
DO $$
BEGIN
    ALTER TABLE journal ADD COLUMN IF NOT EXISTS xact_id xid8 NOT NULL DEFAULT pg_current_xact_id();
    CREATE INDEX IF NOT EXISTS journal_xact_id_idx ON journal (xact_id);
END
$$;
