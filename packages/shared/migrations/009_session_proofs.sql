-- Protocol v2 session proofs (docs/protocol.md "Security"). Each LOGIN/RESUME issues a new key;
-- the gateway holding the session verifies proofs and names the key that made one (its id), so
-- the router knows a datagram belongs to the session. proven: a valid proof came since the key
-- was issued, so the session accepts nothing without one and its address is validated.
-- plain_ok: PLAIN_SESSIONS allows this session to act without proofs.
ALTER TABLE sessions
  ADD COLUMN proof_key_id text NOT NULL DEFAULT '',
  ADD COLUMN proven boolean NOT NULL DEFAULT false,
  ADD COLUMN plain_ok boolean NOT NULL DEFAULT true;
