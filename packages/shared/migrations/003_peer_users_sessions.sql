-- peer-sync step 2: Update User and Update Connected (docs/peer-protocol.md).

-- Sessions held by another cluster are listed here too (cluster <> this one), with no local
-- endpoint (gateway = '' and addr = ''): only local sessions need a unique endpoint.
DROP INDEX sessions_endpoint;
CREATE UNIQUE INDEX sessions_endpoint ON sessions (gateway, addr) WHERE gateway <> '';
CREATE INDEX sessions_gateway_addr ON sessions (gateway, addr);
CREATE INDEX sessions_cluster ON sessions (cluster);

-- Accounts that lost a registration race to an account of the same name registered earlier
-- (or, at the same instant, from a cluster with a smaller name). A LOGIN with the loser's
-- password gets ERR TAKEN instead of ERR AUTH.
CREATE TABLE lost_registrations (
  name        text NOT NULL,
  home        text NOT NULL,
  created_at  timestamptz NOT NULL,
  pass_hash   text NOT NULL,
  lost_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, home, created_at)
);

-- Accounts removed (UNREGISTER anywhere): a user.register of that very account that arrives
-- late over another link (C hears B's unregister before A's register) must not bring it back.
CREATE TABLE user_tombstones (
  name        text NOT NULL,
  created_at  timestamptz NOT NULL,
  removed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, created_at)
);
CREATE INDEX user_tombstones_removed_at ON user_tombstones (removed_at);

-- Lines for local clients decided by peer-sync (which has no bus), e.g. `BYE replaced` when a
-- login in another cluster replaces a session held here. Written in peer-sync's apply
-- transaction; the routers drain and publish them.
CREATE TABLE pending_pushes (
  id          bigserial PRIMARY KEY,
  gateway     text NOT NULL,
  addr        text NOT NULL,
  line        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
