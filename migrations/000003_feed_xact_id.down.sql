-- Removes the feed's column and its index (migration 000003). Writers that
-- know nothing of it go on as before; pgjournal's ReadFeed and FeedStart
-- fail until it is applied again.
-- Dropping the column drops its index.
ALTER TABLE journal DROP COLUMN IF EXISTS xact_id;
