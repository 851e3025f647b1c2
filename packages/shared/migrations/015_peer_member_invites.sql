-- peer-sync: each membership is the one invite that admitted it (docs/peer-protocol.md
-- "Joining by invite", "Revoking"). A revoke names the membership (name + invite id) and leaves
-- a tombstone, so an older member.join delivered after it (from another issuer's outbox) cannot
-- bring the revoked cluster back; only a new invite does.

-- The invite that admitted this member. NULL: not known (a cluster a join answer listed without
-- one: a PEERS peer of the issuer, or the issuer itself); any join replaces such a row and any
-- revoke of its name removes it.
ALTER TABLE peer_members ADD COLUMN invite_id text;

-- Revoked memberships: a member.join naming one of these is ignored. Kept 30 days (like the
-- account tombstones): longer than any outbox row lives.
CREATE TABLE peer_revoked_invites (
  name        text NOT NULL,
  invite_id   text NOT NULL,
  revoked_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, invite_id)
);

-- The invite this cluster joined with (NULL: none, or joined before this migration): a JOIN
-- with another invite is a rejoin (after a revoke), not a restart.
ALTER TABLE peer_identity ADD COLUMN joined_with_invite text;
