-- Gives journal payloads back the server's default compression
-- (default_toast_compression). Rows written with lz4 keep it. Before
-- PostgreSQL 14 there is no per-column compression and nothing to undo.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE journal ALTER COLUMN payload SET COMPRESSION default';
    END IF;
END
$$;
