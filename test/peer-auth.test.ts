/**
 * The link security of peer-sync, against a real process: cluster a's peer-sync runs with b
 * and c configured but silent (long interval, so its own checks never write during the test).
 * Requests are built with the service's own signing function.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { newNonce, signedHeaders, verifyResponse, HEADERS } from "../services/peer-sync/src/signing.ts";
import { eventually, sqlOn, startLinkedClusters, type LinkedClusters } from "./support/clusters.ts";

let lc: LinkedClusters;

beforeAll(async () => {
  lc = await startLinkedClusters({ names: ["a", "b", "c"], routers: false, start: ["a"], intervalMs: 600_000 });
}, 60_000);

afterAll(async () => {
  await lc?.stop();
});

const a = () => lc.get("a");
const serverList = () => sqlOn(a().db.url, "SELECT * FROM server_list ORDER BY name");

interface Sent {
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** A request from `from` to a, signed with `key`, as PeerClient builds it. */
function signed(from: string, key: string, path: string, body: unknown, o: { timestamp?: number; to?: string } = {}): Sent {
  const text = JSON.stringify(body);
  const headers = signedHeaders(key, { method: "POST", path, from, to: o.to ?? "a", timestamp: o.timestamp ?? Date.now(), nonce: newNonce(), body: text });
  return { path, headers, body: text };
}

async function send(r: Sent): Promise<{ status: number; json: { error?: string; server?: { name: string; online: number; quota: number } }; signature: string | null; raw: string }> {
  const res = await fetch(`${a().syncUrl}${r.path}`, { method: "POST", headers: r.headers, body: r.body });
  const raw = await res.text();
  return { status: res.status, json: JSON.parse(raw) as never, signature: res.headers.get(HEADERS.signature), raw };
}

const announceFrom = (name: string, over: Partial<{ address: string; online: number; quota: number }> = {}) => ({
  v: 1,
  kind: "announce",
  server: { name, address: over.address ?? "127.0.0.1:4242", syncUrl: lc.get(name === "mallory" ? "b" : name).syncUrl, quota: over.quota ?? 50, online: over.online ?? 5 },
});

async function refusedCount(reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${a().peerSync.httpPort}/metrics`)).text();
  const m = new RegExp(`^pesan_peer_refused_requests_total\\{reason="${reason}"[^}]*\\} (\\d+)$`, "m").exec(text);
  return Number(m?.[1] ?? NaN);
}

test("forged, unsigned, unknown-sender, stale and misdirected requests are refused, logged, and change nothing", async () => {
  const before = await serverList();
  const evil = { address: "10.66.66.66:6666", online: 999, quota: 999 };
  const wrongKey = "f".repeat(64);
  const cases: Array<{ what: string; req: Sent; status: number; reason: string }> = [
    { what: "wrong key", req: signed("b", wrongKey, "/v1/announce", announceFrom("b", evil)), status: 401, reason: "bad_signature" },
    { what: "no signature at all", req: { path: "/v1/announce", headers: { "content-type": "application/json" }, body: JSON.stringify(announceFrom("b", evil)) }, status: 401, reason: "missing_auth" },
    { what: "unknown sender", req: signed("mallory", wrongKey, "/v1/announce", announceFrom("mallory", evil)), status: 403, reason: "unknown_sender" },
    { what: "stale timestamp", req: signed("b", lc.keyOf("a", "b"), "/v1/announce", announceFrom("b", evil), { timestamp: Date.now() - 61_000 }), status: 401, reason: "clock_skew" },
    { what: "meant for c", req: signed("b", lc.keyOf("a", "b"), "/v1/announce", announceFrom("b", evil), { to: "c" }), status: 403, reason: "wrong_receiver" },
    { what: "c's key used as b", req: signed("b", lc.keyOf("a", "c"), "/v1/hello", { ...announceFrom("b", evil), kind: "hello" }), status: 401, reason: "bad_signature" },
  ];
  // A signature without the other headers, and a body changed after signing.
  const stripped = signed("b", lc.keyOf("a", "b"), "/v1/announce", announceFrom("b", evil));
  delete stripped.headers[HEADERS.nonce];
  cases.push({ what: "signature without nonce", req: stripped, status: 401, reason: "missing_auth" });
  const tampered = signed("b", lc.keyOf("a", "b"), "/v1/announce", announceFrom("b"));
  cases.push({ what: "body changed after signing", req: { ...tampered, body: JSON.stringify(announceFrom("b", evil)) }, status: 401, reason: "bad_signature" });

  for (const c of cases) {
    const r = await send(c.req);
    expect({ what: c.what, status: r.status, error: r.json.error }).toEqual({ what: c.what, status: c.status, error: c.reason });
    expect(r.signature).toBeNull();
  }
  expect(await serverList()).toEqual(before);
  expect(before.map((r) => r.name)).toEqual(["b", "c"]);
  for (const reason of ["bad_signature", "missing_auth", "unknown_sender", "clock_skew", "wrong_receiver"]) expect(await refusedCount(reason)).toBeGreaterThanOrEqual(1);
  // Each refusal is a warn line naming the claimed peer and the reason.
  const log = await eventually(async () => {
    const lines = readFileSync(join(lc.logDir, "peer-sync-a.log"), "utf8").split("\n").filter((l) => l.includes("peer request refused"));
    expect(lines.length).toBeGreaterThanOrEqual(5);
    return lines.map((l) => JSON.parse(l) as { level: number; peer: string | null; reason: string });
  }, 3000);
  expect(log).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ level: 40, peer: "b", reason: "bad_signature" }),
      expect.objectContaining({ level: 40, peer: null, reason: "missing_auth" }),
      expect.objectContaining({ level: 40, peer: "mallory", reason: "unknown_sender" }),
      expect.objectContaining({ level: 40, peer: "b", reason: "clock_skew" }),
    ]),
  );
});

test("a well-signed body that speaks for another server, or is not a v1 frame, is refused as bad_frame", async () => {
  const before = await serverList();
  const key = lc.keyOf("a", "b");
  expect((await send(signed("b", key, "/v1/announce", announceFrom("c")))).json.error).toBe("bad_frame");
  expect((await send(signed("b", key, "/v1/announce", { ...announceFrom("b"), v: 2 }))).json.error).toBe("bad_frame");
  const notJson = signed("b", key, "/v1/hello", {});
  const r = await send({ ...notJson, body: "{", headers: signedHeaders(key, { method: "POST", path: "/v1/hello", from: "b", to: "a", timestamp: Date.now(), nonce: newNonce(), body: "{" }) });
  expect([r.status, r.json.error]).toEqual([400, "bad_frame"]);
  expect(await serverList()).toEqual(before);
});

test("a replayed announce is refused and does not apply again, even after a restart of peer-sync", async () => {
  const key = lc.keyOf("a", "b");
  const req = signed("b", key, "/v1/announce", announceFrom("b", { address: "127.0.0.1:4343", online: 5, quota: 50 }));
  const first = await send(req);
  expect(first.status).toBe(200);
  // The answer is a's status, signed with the pair's key and bound to this request's nonce.
  expect(first.json.server).toEqual(expect.objectContaining({ name: "a", online: 0 }));
  expect(verifyResponse(key, { status: 200, from: "a", to: "b", nonce: req.headers[HEADERS.nonce]!, body: first.raw }, first.signature ?? undefined)).toBe(true);
  expect(verifyResponse(key, { status: 200, from: "a", to: "b", nonce: newNonce(), body: first.raw }, first.signature ?? undefined)).toBe(false);
  const rowB = async () => (await serverList()).find((r) => r.name === "b") as { address: string; active: boolean; online: number; quota: number };
  expect(await rowB()).toEqual(expect.objectContaining({ address: "127.0.0.1:4343", active: true, online: 5, quota: 50 }));

  // Since then a's checks found b gone; a replay of the old announce must not bring it back.
  await sqlOn(a().db.url, "UPDATE server_list SET active = false, online = 0 WHERE name = 'b'");
  const replayed = await send(req);
  expect([replayed.status, replayed.json.error]).toEqual([401, "replay"]);
  expect(await rowB()).toEqual(expect.objectContaining({ active: false, online: 0 }));
  expect(await refusedCount("replay")).toBe(1);

  await a().peerSync.kill9();
  await a().peerSync.restart();
  const again = await send(req);
  expect([again.status, again.json.error]).toEqual([401, "replay"]);
  expect(await rowB()).toEqual(expect.objectContaining({ active: false, online: 0 }));

  // A new request (fresh nonce) is of course accepted.
  expect((await send(signed("b", key, "/v1/announce", announceFrom("b", { address: "127.0.0.1:4343" })))).status).toBe(200);
  expect(await rowB()).toEqual(expect.objectContaining({ active: true }));
});

test("a hello is answered with this cluster's online count (its own sessions) and quota", async () => {
  // What a's router would have written: its own row, and sessions (one of another cluster's user).
  await sqlOn(a().db.url, "INSERT INTO server_list (name, address, active, proximity, quota, is_self) VALUES ('a', $1, true, 0, 77, true)", [a().address]);
  await sqlOn(a().db.url, "INSERT INTO users (name, pass_hash, home_cluster) VALUES ('u1', 'x', 'a'), ('u2', 'x', 'a'), ('u3', 'x', 'b')");
  await sqlOn(
    a().db.url,
    `INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard) VALUES
     ('u1', 't1', 'a', 'g', '1.1.1.1:1', now(), now()), ('u2', 't2', 'a', 'g', '1.1.1.1:2', now(), now()), ('u3', 't3', 'b', 'g', '1.1.1.1:3', now(), now())`,
  );
  const r = await send(signed("c", lc.keyOf("a", "c"), "/v1/hello", { ...announceFrom("c"), kind: "hello" }));
  expect(r.status).toBe(200);
  // epoch: a's database identity, the one in its peer_self row.
  const epoch = (await sqlOn<{ epoch: string }>(a().db.url, "SELECT epoch FROM peer_self"))[0]?.epoch;
  expect(epoch).toMatch(/^[0-9a-f-]{36}$/);
  const publicKey = (await sqlOn<{ public_key: string }>(a().db.url, "SELECT public_key FROM peer_identity"))[0]?.public_key;
  expect(r.json).toEqual({ v: 1, kind: "status", server: { name: "a", address: a().address, syncUrl: a().syncUrl, online: 2, quota: 77, epoch, publicKey } });
});
