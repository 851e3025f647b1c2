-- peer-sync: clusters that join by invite (services/peer-sync/README.md, docs/peer-protocol.md
-- "Joining by invite"). Peers in PEERS keep their configured keys; a member that joined has a
-- pair key derived from the two clusters' X25519 keys, so only public keys ever travel.

-- This cluster's long-term X25519 key pair (base64url raw keys, as in a JWK). Made once by
-- peer-sync at its first start; the private key never leaves this database and that process.
CREATE TABLE peer_identity (
  one          boolean PRIMARY KEY DEFAULT true CHECK (one),
  private_key  text NOT NULL,
  public_key   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- A peer's public key as it told us in a signed status (or as the join introduced it): what the
-- issuer of an invite hands a newcomer, so the newcomer can derive its key with that peer.
ALTER TABLE server_list ADD COLUMN public_key text;

-- Invites this cluster issued. The token's secret is not kept: only the MAC key derived from it
-- (bound to the invite id and name), which verifies the newcomer's join request. Used once.
CREATE TABLE peer_invites (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  mac_key     text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);

-- The clusters linked without a PEERS entry: joined by invite here, or introduced by a member
-- (member.join). revoked_at set: no link and no key any more (member.revoke, or `revoke`);
-- only a new invite brings the name back.
CREATE TABLE peer_members (
  name           text PRIMARY KEY,
  sync_url       text NOT NULL,
  address        text NOT NULL,
  public_key     text NOT NULL,
  introduced_by  text NOT NULL,
  joined_at      timestamptz NOT NULL DEFAULT now(),
  revoked_at     timestamptz
);

-- A running peer-sync adds and removes links at once (LISTEN pesan_members, see 005_notify.sql):
-- the `revoke` command is another process.
CREATE TRIGGER peer_members_notify AFTER INSERT OR UPDATE OR DELETE ON peer_members FOR EACH STATEMENT EXECUTE FUNCTION pesan_notify('pesan_members');
