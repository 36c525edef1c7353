-- The event journal. One row per event; (persistence_id, sequence_nr) is the
-- optimistic-concurrency key every writer relies on. The offset store appends
-- its snapshots here under persistence ids of the form outbox::<name>::offsets.
CREATE TABLE IF NOT EXISTS journal (
    persistence_id text        NOT NULL,
    sequence_nr    bigint      NOT NULL CHECK (sequence_nr > 0),
    payload        bytea       NOT NULL,
    manifest       text        NOT NULL DEFAULT '',
    writer_uuid    text        NOT NULL DEFAULT '',
    deleted        boolean     NOT NULL DEFAULT false,
    tags           text[]      NOT NULL DEFAULT '{}',
    written_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (persistence_id, sequence_nr)
);
