-- Exactly-once SEND keeps the id of the message its first try created, so a replay of the same
-- stream entry (a router died between COMMIT and publishing) is recognised by id rather than by
-- parsing the stored reply line. Rows written before this migration have none; they expire
-- within the 60 s retry window.
ALTER TABLE send_dedup ADD COLUMN message_id text;
