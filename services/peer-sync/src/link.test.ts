import type { Db, QueryResult, Row } from "@pesan/shared/db";
import { createLogger, createRegistry } from "@pesan/shared/observability";
import { answersHeartbeat, checkFailure, Link, NOT_A_MEMBER, type PeerCaller } from "./link.ts";
import { PeerCallError } from "./client.ts";
import { createPeerSyncMetrics } from "./metrics.ts";

/** Records the statements peer-sync sends; answers every one with one affected row. */
class FakeDb {
  readonly calls: Array<{ sql: string; params: unknown[] }> = [];
  failing = false;
  async query<R extends Row>(sql: string, params: unknown[] = []): Promise<QueryResult<R>> {
    if (this.failing) throw new Error("connection refused");
    this.calls.push({ sql: sql.replace(/\s+/g, " ").trim(), params });
    return { rows: [], rowCount: 1 };
  }
  writes(): string[] {
    return this.calls.map((c) =>
      c.sql.startsWith("UPDATE server_list SET active = false")
        ? "down"
        : c.sql.startsWith("INSERT INTO server_list")
          ? "up"
          : c.sql.startsWith("INSERT INTO pending_pushes")
            ? `redirect ${String(c.params[0])} ${String(c.params[1])} ${String(c.params[3])}`
            : "other",
    );
  }
}

class FakePeer implements PeerCaller {
  readonly paths: string[] = [];
  up = true;
  answerAs = "b";
  /** How long the peer takes to answer. */
  delayMs = 0;
  async post(path: string): Promise<unknown> {
    this.paths.push(path);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (!this.up) throw new Error("connect ECONNREFUSED");
    return { v: 1, kind: "status", server: { name: this.answerAs, address: "127.0.0.1:5000", syncUrl: "http://127.0.0.1:7001", quota: 10, online: 3 } };
  }
}

function setup(failuresToDown = 2, peerServesClients = false) {
  const db = new FakeDb();
  const peer = new FakePeer();
  let selfDown = false;
  const registry = createRegistry("peer-sync-test");
  const link = new Link(
    { name: "b", syncUrl: "http://127.0.0.1:7001", address: "127.0.0.1:5000", key: "k".repeat(32), proximity: 20 },
    { intervalMs: 1000, failuresToDown },
    {
      db: db as unknown as Db,
      client: peer,
      logger: createLogger("peer-sync", "silent"),
      metrics: createPeerSyncMetrics(registry, ["b"]),
      selfStatus: async () => {
        if (selfDown) throw new Error("our database is down");
        return { name: "a", address: "127.0.0.1:4999", syncUrl: "http://127.0.0.1:7000", quota: 5, online: 1 };
      },
      servesClients: async () => peerServesClients,
      clock: () => new Date(0),
    },
  );
  return { db, peer, link, registry, setSelfDown: (v: boolean) => (selfDown = v) };
}

test("announces first, then says hello; each answer writes the peer UP with its load and our proximity", async () => {
  const { db, peer, link } = setup();
  await link.checkOnce();
  await link.checkOnce();
  expect(peer.paths).toEqual(["/v1/announce", "/v1/hello"]);
  expect(link.state).toBe("UP");
  expect(db.writes()).toEqual(["up", "up"]);
  expect(db.calls[0]!.params).toEqual(["b", "127.0.0.1:5000", 20, 10, 3, new Date(0), null]);
  expect(db.calls[1]!.params[6]).toEqual(expect.any(Number));
});

test("each hello's UP write carries the measured distance; the announce and a failed check measure nothing", async () => {
  const { db, peer, link } = setup(3);
  // The announce: a new connection's handshakes are no distance; the row keeps its value (null here).
  peer.delayMs = 500;
  await link.checkOnce();
  expect(db.calls[0]!.params[6]).toBeNull();
  peer.delayMs = 200;
  await link.checkOnce();
  const first = db.calls[1]!.params[6] as number;
  // The first sample is the distance: at least the peer's 200 ms (timers never fire early).
  expect(Number.isInteger(first)).toBe(true);
  expect(first).toBeGreaterThanOrEqual(200);
  expect(first).toBeLessThan(500);
  // A quicker answer is the distance at once, and /healthz shows it.
  peer.delayMs = 0;
  await link.checkOnce();
  const quick = db.calls[2]!.params[6] as number;
  expect(quick).toBeLessThan(100);
  expect(link.describe()).toEqual({ state: "UP", failures: 0, rttMs: quick });
  // A failure writes no row (the row keeps its last distance).
  peer.up = false;
  await link.checkOnce();
  expect(db.writes()).toEqual(["up", "up", "up"]);
});

test("DOWN after N failures in a row, written once; back UP with an announce again", async () => {
  const { db, peer, link, registry } = setup(2);
  await link.checkOnce();
  peer.up = false;
  await link.checkOnce();
  expect(link.state).toBe("UP");
  await link.checkOnce();
  expect(link.state).toBe("DOWN");
  await link.checkOnce();
  // DOWN: written once, and the peer's clients get REDIRECT to us (if we are the first survivor).
  expect(db.writes()).toEqual(["up", "down", "redirect b a REDIRECT 127.0.0.1:4999"]);
  expect(link.describe()).toEqual({ state: "DOWN", failures: 3, error: "connect ECONNREFUSED" });
  expect(await registry.getSingleMetricAsString("pesan_peer_link_up")).toMatch(/peer="b"[^}]*\} 0/);
  peer.up = true;
  await link.checkOnce();
  expect(link.state).toBe("UP");
  expect(peer.paths.at(-1)).toBe("/v1/announce");
  expect(await registry.getSingleMetricAsString("pesan_peer_link_up")).toMatch(/peer="b"[^}]*\} 1/);
});

test("an answer from another server than the one configured counts as a failure", async () => {
  const { peer, link } = setup(1);
  peer.answerAs = "c";
  await link.checkOnce();
  expect(link.describe()).toEqual({ state: "DOWN", failures: 1, error: "the answer comes from c, not b" });
});

test("our own database failing is not the peer's failure", async () => {
  const { peer, link, setSelfDown } = setup(1);
  await link.checkOnce();
  setSelfDown(true);
  await expect(link.checkOnce()).rejects.toThrow(/our database/);
  expect(link.state).toBe("UP");
  expect(peer.paths).toEqual(["/v1/announce"]);
});

test("a DOWN row that could not be written is written at the next failure", async () => {
  const { db, peer, link } = setup(1);
  peer.up = false;
  db.failing = true;
  await expect(link.checkOnce()).rejects.toThrow(/connection refused/);
  expect(link.state).toBe("DOWN");
  db.failing = false;
  await link.checkOnce();
  expect(db.writes()).toEqual(["down", "redirect b a REDIRECT 127.0.0.1:4999"]);
  await link.checkOnce();
  expect(db.writes()).toEqual(["down", "redirect b a REDIRECT 127.0.0.1:4999"]);
});

test("an announce received makes a DOWN peer UP at once", async () => {
  const { peer, link } = setup(1);
  peer.up = false;
  await link.checkOnce();
  expect(link.state).toBe("DOWN");
  link.observeAnnounce();
  expect(link.state).toBe("UP");
});

test("DOWN to us but its gateway still answers its clients (a cut link): no REDIRECT", async () => {
  const { db, peer, link } = setup(1, true);
  peer.up = false;
  await link.checkOnce();
  expect(link.state).toBe("DOWN");
  expect(db.writes()).toEqual(["down"]);
});

test("answersHeartbeat: a real UDP socket answering yes counts; a silent port or a bad address does not", async () => {
  const { createSocket } = await import("node:dgram");
  const s = createSocket("udp4");
  s.on("message", (m, r) => {
    if (m.toString() === "/@live?") s.send("yes", r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const silent = createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", () => r()));
  try {
    expect(await answersHeartbeat(`127.0.0.1:${s.address().port}`)).toBe(true);
    expect(await answersHeartbeat(`127.0.0.1:${silent.address().port}`)).toBe(false);
    expect(await answersHeartbeat("not an address")).toBe(false);
  } finally {
    s.close();
    silent.close();
  }
});

test("a check refused with 403 unknown_sender reads as 'not a member' (this cluster revoked there); other failures keep their message", () => {
  expect(checkFailure(new PeerCallError("refused", "HTTP 403 (unknown_sender)", 403))).toBe(NOT_A_MEMBER);
  expect(NOT_A_MEMBER).toMatch(/^refused: not a member/);
  expect(checkFailure(new PeerCallError("refused", "HTTP 403 (wrong_receiver)", 403))).toBe("HTTP 403 (wrong_receiver)");
  expect(checkFailure(new PeerCallError("refused", "HTTP 401 (bad_signature)", 401))).toBe("HTTP 401 (bad_signature)");
  expect(checkFailure(new PeerCallError("timeout", "no answer within 1000 ms"))).toBe("no answer within 1000 ms");
});
