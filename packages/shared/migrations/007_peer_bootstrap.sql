-- peer-sync: a peer linked for the first time (a cluster added to PEERS later, or any peer of
-- a database from before this migration) is sent what this cluster already had: its accounts
-- and its undelivered messages, as frames targeted at that peer. The outbox alone cannot do it:
-- rows every peer acknowledged are pruned, and none are kept while no peer is configured.
-- NULL: not done yet for that peer.
ALTER TABLE peer_links ADD COLUMN bootstrapped_at timestamptz;

-- The peer's database identity (its peer_self.epoch) as it last told us. A different one means
-- its database was recreated (restored empty): it is bootstrapped again.
ALTER TABLE peer_links ADD COLUMN peer_epoch text;
