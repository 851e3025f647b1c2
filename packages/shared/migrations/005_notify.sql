-- Wake-ups instead of waiting for the next poll (LISTEN/NOTIFY; both sides still poll, so a
-- notification lost while a listener reconnects only costs one poll interval).
--   pesan_outbox: peer-sync sends new frames to its peers at once.
--   pesan_pushes: the routers publish lines peer-sync queued for their clients at once.
-- Statement-level, and Postgres folds identical notifications of one transaction into one, so
-- a router batch that writes a thousand frames sends one notification.
CREATE FUNCTION pesan_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], '');
  RETURN NULL;
END $$;

CREATE TRIGGER peer_outbox_notify AFTER INSERT ON peer_outbox FOR EACH STATEMENT EXECUTE FUNCTION pesan_notify('pesan_outbox');
CREATE TRIGGER pending_pushes_notify AFTER INSERT ON pending_pushes FOR EACH STATEMENT EXECUTE FUNCTION pesan_notify('pesan_pushes');
