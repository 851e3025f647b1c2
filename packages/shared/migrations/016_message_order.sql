-- The order messages were stored in, as a tie-break after sent_at. A router's batch gives all
-- its SENDs the same sent_at, and a tagged SEND's id (sessionSendId, 013) is a hash, so
-- "sent_at, id" no longer kept two pipelined SENDs of one client in the order they were sent
-- (INBOX, delivery at login, the outbox frames to peers). A peer's copies take the next values
-- in the order their frames arrive, which is the sender's commit order.
-- Rows stored before this migration have none (NULL sorts after any value ascending, first
-- descending, so the two orders stay each other's reverse); the column is added without a
-- default and given one after, which rewrites nothing.
CREATE SEQUENCE messages_seq AS bigint;
ALTER TABLE messages ADD COLUMN seq bigint;
ALTER TABLE messages ALTER COLUMN seq SET DEFAULT nextval('messages_seq');
ALTER SEQUENCE messages_seq OWNED BY messages.seq;
