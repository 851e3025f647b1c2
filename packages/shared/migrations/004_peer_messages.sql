-- peer-sync step 3: Update Messages and routing (docs/peer-protocol.md).

-- A message that exists in other clusters too (message.new was written for it, or it came from
-- a peer): its delivered/read/deleted changes are sent to the others as message.state frames.
-- Messages that never left this cluster (delivered at once to a local session) stay false, so
-- the hot path writes no frames for them.
ALTER TABLE messages ADD COLUMN replicated boolean NOT NULL DEFAULT false;

-- Replicated messages deleted here or elsewhere: a message.new or message.state that arrives
-- late over another link must not bring them back. Pruned after 30 days by peer-sync.
CREATE TABLE message_tombstones (
  id          text PRIMARY KEY,
  deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_tombstones_deleted_at ON message_tombstones (deleted_at);
