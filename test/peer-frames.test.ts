/**
 * The rails later steps put user, connected and message frames on: outbox -> per-peer cursor
 * -> /v1/frames -> position check -> handler by kind. Two PeerSync components in this process,
 * each with its own database, and a test frame kind whose handler is deliberately NOT
 * idempotent, so anything applied twice shows.
 */
import pg from "pg";
import { migrate, PgDb } from "@pesan/shared/db";
import { createLogger, createRegistry } from "@pesan/shared/observability";
import { freePorts } from "@pesan/cluster";
import { oneByOne, PeerClient, PeerSync, type FrameKinds, type PeerConfig } from "../services/peer-sync/src/index.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { eventually } from "./support/clusters.ts";

const KEY = "k".repeat(40);
const kinds: FrameKinds = {
  "test.note": {
    schema: {
      safeParse: (d: unknown) =>
        typeof (d as { text?: unknown })?.text === "string"
          ? { success: true as const, data: d as { text: string } }
          : { success: false as const, error: { issues: [{ path: ["text"], message: "must be a string" }] } },
    },
    applyRun: oneByOne(async (tx, ctx, d: { text: string }) => void (await tx.query("INSERT INTO test_notes (peer, text) VALUES ($1, $2)", [ctx.peer, d.text]))),
  },
};

let dbs: TestDatabase[] = [];
const pools: PgDb[] = [];
const syncs: PeerSync[] = [];
let ports: number[];

beforeAll(async () => {
  dbs = await Promise.all([createTestDatabase("framesa"), createTestDatabase("framesb")]);
  ports = await freePorts(2);
  const names = ["a", "b"];
  for (const [i, name] of names.entries()) {
    const db = new PgDb(dbs[i]!.url, { max: 4 });
    pools.push(db);
    await migrate(db);
    await db.query("CREATE TABLE test_notes (n bigserial PRIMARY KEY, peer text NOT NULL, text text NOT NULL)");
    const other = 1 - i;
    const peers: PeerConfig[] = [{ name: names[other]!, syncUrl: `http://127.0.0.1:${ports[other]}`, address: `127.0.0.1:${4000 + other}`, key: KEY, proximity: 10 }];
    const sync = new PeerSync(
      {
        self: name,
        publicAddress: `127.0.0.1:${4000 + i}`,
        syncUrl: `http://127.0.0.1:${ports[i]}`,
        peers,
        listen: { host: "127.0.0.1", port: ports[i]! },
        intervalMs: 100,
        failuresToDown: 2,
        timeoutMs: 500,
        windowMs: 60_000,
        outboxPollMs: 50,
        outboxBatch: 3,
      },
      { db, logger: createLogger("peer-sync", "silent"), registry: createRegistry("peer-sync"), kinds },
    );
    syncs.push(sync);
  }
  for (const s of syncs) await s.start();
  await eventually(async () => expect(syncs.map((s) => Object.values(s.linkStates())[0]!.state)).toEqual(["UP", "UP"]), 10_000);
}, 60_000);

afterAll(async () => {
  for (const s of syncs) await s.close();
  for (const p of pools) await p.close();
  for (const d of dbs) await d.drop();
});

const [A, B] = [0, 1];
const notesAt = async (i: number) => (await pools[i]!.query<{ peer: string; text: string }>("SELECT peer, text FROM test_notes ORDER BY n")).rows.map((r) => `${r.peer}:${r.text}`);
const write = (i: number, text: string, target: string | null = null) =>
  pools[i]!.query("INSERT INTO peer_outbox (kind, payload, target) VALUES ('test.note', $1, $2)", [JSON.stringify({ text }), target]);

test("outbox rows reach the peer once each, in order, in batches; the cursor follows the acks", async () => {
  for (const t of ["n1", "n2", "n3", "n4", "n5", "n6", "n7"]) await write(A, t);
  await write(A, "not-for-b", "c");
  await eventually(async () => expect(await notesAt(B)).toEqual(["a:n1", "a:n2", "a:n3", "a:n4", "a:n5", "a:n6", "a:n7"]), 5000);
  const last = (await pools[A]!.query<{ txid: string; id: string }>("SELECT txid::text, id::text FROM peer_outbox WHERE target IS NULL ORDER BY txid DESC, id DESC LIMIT 1")).rows[0]!;
  await eventually(async () => {
    const link = (await pools[A]!.query("SELECT out_txid::text AS txid, out_id::text AS id FROM peer_links WHERE peer = 'b'")).rows[0];
    expect(link).toEqual(last);
  }, 3000);
  const inbound = (await pools[B]!.query("SELECT in_txid::text AS txid, in_id::text AS id FROM peer_links WHERE peer = 'a'")).rows[0];
  expect(inbound).toEqual(last);
  expect(await notesAt(A)).toEqual([]);
});

test("a row committed late by an older transaction is not skipped", async () => {
  const slow = new pg.Client({ connectionString: dbs[A]!.url });
  await slow.connect();
  try {
    await slow.query("BEGIN");
    await slow.query("INSERT INTO peer_outbox (kind, payload) VALUES ('test.note', '{\"text\":\"early\"}')");
    await write(A, "late");
    // While the older transaction runs, nothing past it may go: it could still commit rows before.
    await new Promise((r) => setTimeout(r, 400));
    expect((await notesAt(B)).slice(7)).toEqual([]);
    await slow.query("COMMIT");
  } finally {
    await slow.end();
  }
  await eventually(async () => expect((await notesAt(B)).slice(7)).toEqual(["a:early", "a:late"]), 5000);
});

test("a batch sent again (lost ack) is acknowledged and applies nothing twice; unknown kinds are refused", async () => {
  const epoch = (await pools[A]!.query<{ epoch: string }>("SELECT epoch FROM peer_self")).rows[0]!.epoch;
  const frames = (await pools[A]!.query<{ txid: string; id: string; payload: unknown }>("SELECT txid::text, id::text, payload FROM peer_outbox WHERE target IS NULL ORDER BY txid, id")).rows.map((r) => ({
    txid: r.txid,
    id: r.id,
    kind: "test.note",
    data: r.payload,
  }));
  const asA = new PeerClient({ self: "a", peer: "b", baseUrl: `http://127.0.0.1:${ports[B]}`, key: KEY, timeoutMs: 2000 });
  try {
    const before = await notesAt(B);
    const ack = (await asA.post("/v1/frames", { v: 1, kind: "frames", epoch, frames })) as { kind: string; upTo: { txid: string; id: string } };
    expect(ack).toEqual({ v: 1, kind: "ack", upTo: { txid: frames.at(-1)!.txid, id: frames.at(-1)!.id } });
    expect(await notesAt(B)).toEqual(before);
    await expect(asA.post("/v1/frames", { v: 1, kind: "frames", epoch, frames: [{ txid: "999999999", id: "1", kind: "user.steal", data: {} }] })).rejects.toThrow(/HTTP 400 \(bad_frame\)/);
    // A recreated sender database (new epoch) starts its positions again; they are not mistaken for old ones.
    await asA.post("/v1/frames", { v: 1, kind: "frames", epoch: "another-epoch", frames: [{ txid: "1", id: "1", kind: "test.note", data: { text: "fresh" } }] });
    expect((await notesAt(B)).slice(before.length)).toEqual(["a:fresh"]);
  } finally {
    asA.close();
  }
});
