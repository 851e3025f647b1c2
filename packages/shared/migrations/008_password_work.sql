-- Password work off the batches (services/router/src/password-work.ts).

-- Password requests (REGISTER, LOGIN, UNREGISTER) and the requests queued behind them, by
-- message id (stream entry + index), written in the transaction that does the request. A
-- stream entry stays pending until its queued requests are done; when another router takes it
-- over (the first died after COMMIT, before acknowledging), the requests found here are not
-- done twice. No password is stored. Rows go after an hour (an entry is taken over within
-- CLAIM_IDLE_MS, 10 s by default).
CREATE TABLE password_requests_done (
  id text PRIMARY KEY,
  done_at timestamptz NOT NULL
);
CREATE INDEX password_requests_done_at ON password_requests_done (done_at);

-- Failed password checks, as leaky counters (services/router/src/throttle.ts), shared by the
-- routers of the cluster. key: 'p <user> <ip>' (account at one IP), 'i <ip>', 'a <user>';
-- 't <user> <ip>' marks an (account, IP) that logged in with the right password (at = when).
CREATE TABLE auth_throttle (
  key text PRIMARY KEY,
  failures int NOT NULL,
  at timestamptz NOT NULL
);
CREATE INDEX auth_throttle_at ON auth_throttle (at);

-- REGISTERs queued and not yet done, by name (no password): a LOGIN of that name arriving
-- through another router (a burst split over two stream entries) waits for them instead of
-- failing with ERR AUTH. Rows of a router that died are ignored after a minute and pruned.
CREATE TABLE registrations_in_flight (
  id text PRIMARY KEY,
  name text NOT NULL,
  since timestamptz NOT NULL
);
CREATE INDEX registrations_in_flight_name ON registrations_in_flight (name);
