-- Core messaging schema for one cluster. Names follow the source design (users, connected,
-- messages, server_list); "connected" is split into the live sessions and their history.

CREATE TABLE users (
  name          text PRIMARY KEY,
  pass_hash     text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  home_cluster  text NOT NULL
);
CREATE INDEX users_created_at ON users (created_at);

-- One live session per user; the (gateway, addr) pair is where its pushes go.
CREATE TABLE sessions (
  user_name   text PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
  token       text NOT NULL,
  cluster     text NOT NULL,
  gateway     text NOT NULL,
  addr        text NOT NULL,
  cap_ack     boolean NOT NULL DEFAULT false,
  login_at    timestamptz NOT NULL,
  last_heard  timestamptz NOT NULL
);
CREATE UNIQUE INDEX sessions_endpoint ON sessions (gateway, addr);
CREATE INDEX sessions_last_heard ON sessions (last_heard);

-- Connection history: login, resume, logout, replaced, expired, unregistered.
CREATE TABLE connection_log (
  id         bigserial PRIMARY KEY,
  user_name  text NOT NULL,
  event      text NOT NULL,
  cluster    text NOT NULL,
  gateway    text,
  addr       text,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connection_log_user ON connection_log (user_name, at);

CREATE TABLE messages (
  id             text PRIMARY KEY,
  sent_at        timestamptz NOT NULL,
  sender         text NOT NULL,
  recipient      text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
  body           text NOT NULL,
  delivered      boolean NOT NULL DEFAULT false,
  read           boolean NOT NULL DEFAULT false,
  broadcast      boolean NOT NULL DEFAULT false,
  -- reliable delivery (CAP ACK): pushes so far and when the next resend is due
  push_attempts  int NOT NULL DEFAULT 0,
  next_push_at   timestamptz
);
CREATE INDEX messages_recipient ON messages (recipient, sent_at);
CREATE INDEX messages_undelivered ON messages (recipient, sent_at) WHERE NOT delivered;
CREATE INDEX messages_resend ON messages (next_push_at) WHERE next_push_at IS NOT NULL;

-- Exactly-once SEND under client retry: the first reply to (session, tag), kept 60 s.
CREATE TABLE send_dedup (
  token       text NOT NULL,
  tag         text NOT NULL,
  reply       text NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (token, tag)
);
CREATE INDEX send_dedup_created_at ON send_dedup (created_at);

-- CAP ACK sent before LOGIN (as IRC clients negotiate capabilities before registering).
CREATE TABLE pending_caps (
  gateway     text NOT NULL,
  addr        text NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (gateway, addr)
);

-- Every known server (cluster entry point). This cluster's own row has is_self.
CREATE TABLE server_list (
  name        text PRIMARY KEY,
  address     text NOT NULL,
  active      boolean NOT NULL DEFAULT false,
  access_key  text,
  proximity   int NOT NULL DEFAULT 100,
  quota       int NOT NULL DEFAULT 0,
  online      int NOT NULL DEFAULT 0,
  is_self     boolean NOT NULL DEFAULT false,
  last_seen   timestamptz
);
