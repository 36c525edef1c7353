-- Drops the journal and every event in it.
DROP TABLE IF EXISTS journal;
