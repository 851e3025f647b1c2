-- peer-sync: links between clusters (services/peer-sync, docs/peer-protocol.md).

-- Where a peer's sync endpoint is (from peer-sync's PEERS); NULL for this cluster's own row and
-- for servers known only from the router's PEERS.
ALTER TABLE server_list ADD COLUMN sync_url text;

-- This database's identity as a sender of frames. Outbox positions restart when a database is
-- recreated; a peer that sees a new epoch forgets the positions it had applied from the old one.
CREATE TABLE peer_self (
  one    boolean PRIMARY KEY DEFAULT true CHECK (one),
  epoch  text NOT NULL DEFAULT gen_random_uuid()::text
);
INSERT INTO peer_self DEFAULT VALUES;

-- Nonces of accepted peer requests, kept until their timestamp leaves the accepted window:
-- a captured request replayed within the window finds its nonce here and is refused, even
-- after a restart of peer-sync.
CREATE TABLE peer_nonces (
  peer        text NOT NULL,
  nonce       text NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (peer, nonce)
);
CREATE INDEX peer_nonces_expires_at ON peer_nonces (expires_at);

-- Frames to replicate to the other clusters (written by the routers in later steps; target
-- NULL = every peer). Read in (txid, id) order and only below the oldest running transaction,
-- so a row committed late by a slower transaction is never skipped by a cursor that moved on.
CREATE TABLE peer_outbox (
  id          bigserial PRIMARY KEY,
  txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  kind        text NOT NULL,
  payload     jsonb NOT NULL,
  target      text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX peer_outbox_position ON peer_outbox (txid, id);

-- Per peer: how far our outbox has been acknowledged by it (out_*), and the highest position
-- of its outbox applied here (in_*, within its epoch), so a re-sent frame is applied once.
CREATE TABLE peer_links (
  peer        text PRIMARY KEY,
  out_txid    xid8 NOT NULL DEFAULT '0',
  out_id      bigint NOT NULL DEFAULT 0,
  in_epoch    text,
  in_txid     xid8 NOT NULL DEFAULT '0',
  in_id       bigint NOT NULL DEFAULT 0,
  updated_at  timestamptz
);
