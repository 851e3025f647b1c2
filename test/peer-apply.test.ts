/**
 * peer-sync's inbound apply path against a real Postgres, with batches from two peers arriving
 * at once (as they do: each peer's pump posts on its own). The copy of a message may come from
 * the sender's cluster (message.new) while its delivered state comes from the recipient's
 * cluster (message.state); whichever commits first, the copy must end delivered.
 */
import { migrate, PgDb } from "@pesan/shared/db";
import { createLogger, createRegistry } from "@pesan/shared/observability";
import { FRAME_KINDS, PROTOCOL_VERSION } from "../services/peer-sync/src/frames.ts";
import { Applier } from "../services/peer-sync/src/apply.ts";
import { createPeerSyncMetrics } from "../services/peer-sync/src/metrics.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

let tdb: TestDatabase;
let db: PgDb;
let applier: Applier;

const peers = ["a", "b"].map((name, i) => ({ name, syncUrl: `http://127.0.0.1:${9000 + i}`, address: `127.0.0.1:${4000 + i}`, key: "k".repeat(40), proximity: 10 }));

beforeAll(async () => {
  tdb = await createTestDatabase("apply");
  db = new PgDb(tdb.url, { max: 8 });
  await migrate(db);
  await db.query("INSERT INTO users (name, pass_hash, home_cluster) VALUES ('ua', 'x', 'a'), ('ub', 'x', 'b')");
  applier = new Applier(peers, {
    db,
    logger: createLogger("peer-sync", "silent"),
    metrics: createPeerSyncMetrics(createRegistry("peer-sync"), ["a", "b"]),
    kinds: FRAME_KINDS,
    self: "c",
    selfStatus: async () => ({ name: "c", address: "127.0.0.1:4002", quota: 0, online: 0, syncUrl: "http://127.0.0.1:9002" }),
    onAnnounce: () => undefined,
  });
});

afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

let txid = 100;
function batch(frames: Array<{ kind: string; data: unknown }>) {
  return { v: PROTOCOL_VERSION as typeof PROTOCOL_VERSION, kind: "frames" as const, epoch: "e1", frames: frames.map((f, i) => ({ txid: String(txid++), id: String(i + 1), ...f })) };
}

/** Each peer posts its batches one after another (as its pump does); the two peers at once. */
async function fromBothPeers(n: number, frameOf: (peer: "a" | "b", i: number) => { kind: string; data: unknown }): Promise<void> {
  const chain = async (peer: "a" | "b") => {
    for (let i = 0; i < n; i++) await applier.frames(peer, batch([frameOf(peer, i)]));
  };
  await Promise.all([chain("a"), chain("b")]);
}

test("message.new from the sender's cluster racing message.state(delivered) from the recipient's: every copy ends delivered", async () => {
  const n = 120;
  const sentAt = new Date().toISOString();
  const msg = (i: number) => ({ id: `b:race-${i}`, sentAt, sender: "ub", recipient: "ua", body: `m${i}` });
  await fromBothPeers(n, (peer, i) => (peer === "b" ? { kind: "message.new", data: msg(i) } : { kind: "message.state", data: { ...msg(i), delivered: true, read: false } }));
  const r = await db.query<{ total: number; undelivered: number }>("SELECT count(*)::int AS total, count(*) FILTER (WHERE NOT delivered)::int AS undelivered FROM messages WHERE id LIKE 'b:race-%'");
  expect(r.rows[0]).toEqual({ total: n, undelivered: 0 });
});

test("a message deleted on the recipient's cluster stays deleted when its message.new arrives at the same time", async () => {
  const n = 60;
  const sentAt = new Date().toISOString();
  await fromBothPeers(n, (peer, i) =>
    peer === "b"
      ? { kind: "message.new", data: { id: `b:del-${i}`, sentAt, sender: "ub", recipient: "ua", body: "x" } }
      : { kind: "message.state", data: { id: `b:del-${i}`, recipient: "ua", deleted: true } },
  );
  const r = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM messages WHERE id LIKE 'b:del-%'");
  expect(r.rows[0]!.n).toBe(0);
});
