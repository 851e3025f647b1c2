-- peer-sync: where a client of another cluster can be reached directly, its UDP address as its
-- own cluster's gateway sees it (session.up `reach`). When that cluster goes DOWN, one survivor
-- pushes `REDIRECT <its address>` there, so the client moves at once instead of after its
-- heartbeat timeout. '' for sessions held here and where the address is unknown.
ALTER TABLE sessions ADD COLUMN reach text NOT NULL DEFAULT '';
