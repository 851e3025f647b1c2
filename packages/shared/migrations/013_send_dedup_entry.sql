-- Exactly-once SEND across clusters: a tagged SEND's message id is now derived from the session
-- and the tag (the same on every cluster), so it no longer tells a replay of the very same stream
-- entry (its router died between COMMIT and publishing: push again) from a client's retry (do not
-- push again). The claim keeps the entry's own id for that. Rows written before this migration
-- have none: their message_id is the entry's id (ids were entry ids then); they expire within the
-- 60 s retry window.
ALTER TABLE send_dedup ADD COLUMN entry_id text;
