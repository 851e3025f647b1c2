import { authenticate, MemoryReplayGuard, nonceExpiry, type AuthContext, type AuthRequest } from "./auth.ts";
import { HEADERS, signedHeaders } from "./signing.ts";

const KB = "b".repeat(40);
const KC = "c".repeat(40);
const NOW = 1_700_000_000_000;
const ctx: AuthContext = { self: "a", keys: new Map([["b", KB], ["c", KC]]), now: NOW, windowMs: 60_000 };
const NONCE = "nnnnnnnnnnnnnnnnnnnnnn";

function req(o: { from?: string; to?: string; key?: string; timestamp?: number; body?: string; path?: string; drop?: string; headers?: Record<string, string> } = {}): AuthRequest {
  const body = o.body ?? '{"v":1}';
  const path = o.path ?? "/v1/hello";
  const headers: Record<string, string> = {
    ...signedHeaders(o.key ?? KB, { method: "POST", path, from: o.from ?? "b", to: o.to ?? "a", timestamp: o.timestamp ?? NOW, nonce: NONCE, body }),
    ...o.headers,
  };
  if (o.drop) delete headers[o.drop];
  return { method: "POST", path, headers, body: Buffer.from(body) };
}

test("a request signed with the pair's key is accepted, naming the peer", () => {
  expect(authenticate(req(), ctx)).toEqual({ ok: true, peer: "b", key: KB, nonce: NONCE, timestamp: NOW });
  expect(authenticate(req({ from: "c", key: KC }), ctx)).toMatchObject({ ok: true, peer: "c" });
});

test.each([HEADERS.from, HEADERS.to, HEADERS.timestamp, HEADERS.nonce, HEADERS.signature])("without %s: 401 missing_auth", (h) => {
  expect(authenticate(req({ drop: h }), ctx)).toMatchObject({ ok: false, status: 401, reason: "missing_auth" });
});

test("malformed headers: 401 missing_auth", () => {
  const bad: Array<Record<string, string>> = [{ [HEADERS.timestamp]: "soon" }, { [HEADERS.nonce]: "short" }, { [HEADERS.from]: "b c" }];
  for (const headers of bad) {
    expect(authenticate(req({ headers }), ctx)).toMatchObject({ ok: false, status: 401, reason: "missing_auth" });
  }
});

test("a sender with no link: 403 unknown_sender, whatever its signature", () => {
  expect(authenticate(req({ from: "mallory" }), ctx)).toMatchObject({ ok: false, status: 403, reason: "unknown_sender", peer: "mallory" });
  expect(authenticate(req({ from: "a" }), ctx)).toMatchObject({ ok: false, status: 403, reason: "unknown_sender" });
});

test("addressed to another server: 403 wrong_receiver", () => {
  expect(authenticate(req({ to: "c" }), ctx)).toMatchObject({ ok: false, status: 403, reason: "wrong_receiver", peer: "b" });
});

test("another link's key, or a changed body or path: 401 bad_signature", () => {
  expect(authenticate(req({ key: KC }), ctx)).toMatchObject({ ok: false, status: 401, reason: "bad_signature" });
  const r = req();
  expect(authenticate({ ...r, body: Buffer.from('{"v":2}') }, ctx)).toMatchObject({ reason: "bad_signature" });
  expect(authenticate({ ...r, path: "/v1/announce" }, ctx)).toMatchObject({ reason: "bad_signature" });
});

test("the timestamp window is ±windowMs, inclusive", () => {
  for (const d of [-60_000, 0, 60_000]) expect(authenticate(req({ timestamp: NOW + d }), ctx)).toMatchObject({ ok: true });
  for (const d of [-60_001, 60_001, -NOW]) expect(authenticate(req({ timestamp: NOW + d }), ctx)).toMatchObject({ ok: false, status: 401, reason: "clock_skew" });
});

test("a forged request with a stale timestamp is reported as a forgery, not as clock skew", () => {
  expect(authenticate(req({ key: KC, timestamp: NOW - 3_600_000 }), ctx)).toMatchObject({ reason: "bad_signature" });
});

test("the claimed sender is cut before it reaches a log line", () => {
  const r = authenticate(req({ drop: HEADERS.signature, from: "x".repeat(100) }), ctx);
  expect(r.ok === false && r.peer).toBe("x".repeat(32));
});

test("the replay guard accepts a nonce once per peer, and forgets it after expiry", async () => {
  const g = new MemoryReplayGuard();
  const exp = nonceExpiry(NOW, 60_000);
  expect(exp.getTime()).toBeGreaterThan(NOW + 60_000);
  expect(await g.firstUse("b", NONCE, exp)).toBe(true);
  expect(await g.firstUse("b", NONCE, exp)).toBe(false);
  expect(await g.firstUse("c", NONCE, exp)).toBe(true);
  await g.prune(new Date(NOW + 30_000));
  expect(await g.firstUse("b", NONCE, exp)).toBe(false);
  await g.prune(new Date(exp.getTime() + 1));
  expect(g.size).toBe(0);
});
