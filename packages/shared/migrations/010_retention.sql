-- Bounded storage: the routers' retention sweep (services/router/src/retention.ts) deletes old
-- rows in small batches. Each batch finds its rows through one of these instead of a scan.
-- Delivered (and read) messages by age; undelivered ones are never aged out (their bound is the
-- recipient's box, BOX_LIMIT, checked at SEND).
CREATE INDEX messages_delivered_sent_at ON messages (sent_at) WHERE delivered;
-- connection_log by age (the row cap goes by id, its primary key).
CREATE INDEX connection_log_at ON connection_log (at);
