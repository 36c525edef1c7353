-- Compresses new journal payloads with lz4 instead of the default pglz where
-- the server can: PostgreSQL 14 or later built with lz4 (the official images
-- and Debian's packages are), told by default_toast_compression offering
-- 'lz4'. Elsewhere this migration changes nothing. Only the column's setting
-- changes: the table is not rewritten, and rows written before keep the
-- compression they were written with.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000
       AND EXISTS (SELECT 1 FROM pg_settings
                    WHERE name = 'default_toast_compression'
                      AND 'lz4' = ANY (enumvals))
    THEN
        EXECUTE 'ALTER TABLE journal ALTER COLUMN payload SET COMPRESSION lz4';
    END IF;
END
$$;
