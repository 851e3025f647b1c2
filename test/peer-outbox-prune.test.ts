/**
 * The outbox is pruned by what the database says peers still need (every peer_links row's
 * cursor), never by the links one process holds at that moment: a member being linked again
 * (its sync URL or key changed) is out of peer-sync's map for a while, and the frames only it
 * still needs must outlive that. Two parts: pruneOutbox against a real Postgres, and two
 * PeerSync components (a and its member m, each with its own database) in this process.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import { migrate, PgDb } from "@pesan/shared/db";
import { createLogger, createRegistry } from "@pesan/shared/observability";
import { freePorts } from "@pesan/cluster";
import { oneByOne, PeerSync, type FrameKinds } from "../services/peer-sync/src/index.ts";
import { forgetStrayLinks, pruneOutbox } from "../services/peer-sync/src/store.ts";
import * as members from "../services/peer-sync/src/membership/store.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { eventually } from "./support/clusters.ts";

const dbs: TestDatabase[] = [];
const pools: PgDb[] = [];

async function freshDb(label: string): Promise<PgDb> {
  const tdb = await createTestDatabase(label);
  dbs.push(tdb);
  const db = new PgDb(tdb.url, { max: 6 });
  pools.push(db);
  await migrate(db);
  return db;
}

afterAll(async () => {
  for (const s of syncs) await s.close();
  for (const p of pools) await p.close();
  for (const d of dbs) await d.drop();
  proxy?.closeAllConnections();
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
});

describe("pruneOutbox", () => {
  let db: PgDb;
  beforeAll(async () => {
    db = await freshDb("prune");
  });

  const write = async (n: number) => {
    for (let i = 0; i < n; i++) await db.query("INSERT INTO peer_outbox (kind, payload) VALUES ('test.note', '{}')");
  };
  const outbox = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM peer_outbox")).rows[0]!.n;
  const ackAll = (peer: string) =>
    db.query("UPDATE peer_links SET (out_txid, out_id) = (SELECT txid, id FROM peer_outbox ORDER BY txid DESC, id DESC LIMIT 1) WHERE peer = $1", [peer]);

  test("rows stay while any peer_links row's cursor is behind them, whoever holds a link; they go once every row passed them", async () => {
    await db.query("INSERT INTO peer_links (peer) VALUES ('b'), ('c')");
    await write(3);
    await ackAll("b");
    // c (a member being linked again, say: in no process's list of links) has not acknowledged them: kept.
    expect(await pruneOutbox(db)).toBe(0);
    expect(await outbox()).toBe(3);
    await write(2);
    await ackAll("c");
    // c acknowledged all five, b the first three (one transaction each): the rows of
    // transactions before b's cursor go; b's last acknowledged one and the two it lacks stay.
    expect(await pruneOutbox(db)).toBe(2);
    expect(await outbox()).toBe(3);
  });

  test("with no peer_links row at all (no peer anywhere) everything goes; with one left, nothing it needs", async () => {
    await db.query("DELETE FROM peer_links WHERE peer = 'b'");
    // c's cursor is at the newest row: the rows of older transactions go, the newest stays.
    expect(await pruneOutbox(db)).toBe(2);
    expect(await outbox()).toBe(1);
    await db.query("DELETE FROM peer_links");
    await write(2);
    expect(await pruneOutbox(db)).toBe(3);
    expect(await outbox()).toBe(0);
  });

  test("forgetStrayLinks keeps the rows of configured peers and active members, and drops the others (a revoked member's, an unconfigured peer's)", async () => {
    await db.query("INSERT INTO peer_links (peer) VALUES ('p'), ('gone'), ('m1'), ('m2'), ('stray')");
    const info = (name: string) => ({ name, syncUrl: `http://127.0.0.1:1/${name}`, address: "127.0.0.1:1", publicKey: "A".repeat(43) });
    await db.withTransaction(async (tx) => {
      await members.recordMember(tx, info("m1"), "x", new Date(), "i1");
      await members.recordMember(tx, info("m2"), "x", new Date(), "i2");
    });
    await db.query("UPDATE peer_members SET revoked_at = now() WHERE name = 'm2'");
    expect(await forgetStrayLinks(db, ["p"])).toBe(3);
    expect((await db.query<{ peer: string }>("SELECT peer FROM peer_links ORDER BY peer")).rows.map((r) => r.peer)).toEqual(["m1", "p"]);
  });
});

// --- a and its member m ------------------------------------------------------------------

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

const syncs: PeerSync[] = [];
let proxy: Server | undefined;

/**
 * An HTTP proxy to `target` that passes every request on, except /v1/frames while `hold` is
 * set: those wait, unanswered, until `release` cuts them (the sender sees its post fail). A
 * pump with a post held cannot close, so the member's re-linking waits as long as the test wants.
 */
async function holdingProxy(port: number, target: string): Promise<{ url: string; held: () => number; release: () => void }> {
  const held: ServerResponse[] = [];
  proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url === "/v1/frames") return void held.push(res);
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith("x-pesan-") || k === "content-type").map(([k, v]) => [k, String(v)]));
      fetch(`${target}${req.url}`, { method: req.method, headers, body: Buffer.concat(chunks) })
        .then(async (r) => {
          const out: Record<string, string> = {};
          r.headers.forEach((v, k) => {
            if (k.startsWith("x-pesan-") || k === "content-type") out[k] = v;
          });
          res.writeHead(r.status, out).end(Buffer.from(await r.arrayBuffer()));
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => proxy!.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}`, held: () => held.length, release: () => held.splice(0).forEach((r) => r.destroy()) };
}

describe("a member linked again", () => {
  let a: PgDb;
  let m: PgDb;
  let ports: number[];
  let px: Awaited<ReturnType<typeof holdingProxy>>;
  const url = (i: number) => `http://127.0.0.1:${ports[i]}`;

  beforeAll(async () => {
    [a, m] = [await freshDb("prunea"), await freshDb("prunem")];
    ports = await freePorts(3);
    px = await holdingProxy(ports[2]!, url(1));
    const idA = await members.ensureIdentity(a);
    const idM = await members.ensureIdentity(m);
    // Each a member of the other (as a join records it), a knowing m behind the proxy first.
    await a.withTransaction((tx) => members.recordMember(tx, { name: "m", syncUrl: px.url, address: "127.0.0.1:4001", publicKey: idM.publicKey }, "a", new Date(), "inv1"));
    await m.withTransaction((tx) => members.recordMember(tx, { name: "a", syncUrl: url(0), address: "127.0.0.1:4000", publicKey: idA.publicKey }, "a", new Date(), null));
    await m.query("CREATE TABLE test_notes (n bigserial PRIMARY KEY, peer text NOT NULL, text text NOT NULL)");
    for (const [i, [name, db]] of ([["a", a], ["m", m]] as const).entries()) {
      const sync = new PeerSync(
        {
          self: name,
          publicAddress: `127.0.0.1:${4000 + i}`,
          syncUrl: url(i),
          peers: [],
          listen: { host: "127.0.0.1", port: ports[i]! },
          // Long: the rejoin test below must not be saved by a check that happens to come.
          intervalMs: 60_000,
          failuresToDown: 3,
          // Longer than the test holds a post.
          timeoutMs: 60_000,
          windowMs: 60_000,
          outboxPollMs: 50,
          outboxBatch: 100,
        },
        { db, logger: createLogger("peer-sync", "silent"), registry: createRegistry("peer-sync"), kinds },
      );
      await sync.start();
      syncs.push(sync);
    }
  }, 60_000);

  const notesAtM = async () => (await m.query<{ text: string }>("SELECT text FROM test_notes WHERE peer = 'a' ORDER BY n")).rows.map((r) => r.text);
  const write = (text: string) => a.query("INSERT INTO peer_outbox (kind, payload) VALUES ('test.note', $1)", [JSON.stringify({ text })]);

  test("its sync URL changes while a post to it hangs: a housekeeping round during the re-link deletes none of its frames, and m gets them all over the new link", async () => {
    await eventually(async () => expect(syncs[0]!.linkStates().m?.state).toBe("UP"), 10_000, 50);
    for (const t of ["w1", "w2", "w3"]) await write(t);
    await eventually(async () => expect(px.held()).toBeGreaterThan(0), 5000, 50);
    // m moved (here: to its real URL). The re-link waits for the held post: m is out of a's map.
    await a.query("UPDATE peer_members SET sync_url = $1 WHERE name = 'm'", [url(1)]);
    await eventually(async () => expect(Object.keys(syncs[0]!.linkStates())).toEqual([]), 5000, 50);
    // A nonce that expired: housekeeping (every 10 s) deletes it first thing, so its going says
    // a round ran, while m was out of the map (it stays out until the post is released).
    await a.query("INSERT INTO peer_nonces (peer, nonce, expires_at) VALUES ('x', 'expired-nonce-0000000000', now() - interval '1 hour')");
    await eventually(async () => expect((await a.query("SELECT 1 FROM peer_nonces WHERE nonce = 'expired-nonce-0000000000'")).rowCount).toBe(0), 15_000, 100);
    expect(Object.keys(syncs[0]!.linkStates())).toEqual([]);
    px.release();
    await eventually(async () => expect(await notesAtM()).toEqual(["w1", "w2", "w3"]), 10_000, 100);
    expect(syncs[0]!.linkStates().m?.state).toBe("UP");
  }, 60_000);

  test("a revoke and a rejoin with the same key seen in one reload: the link starts afresh and is bootstrapped at once, not at its next check", async () => {
    const [{ public_key: key }] = (await m.query<{ public_key: string }>("SELECT public_key FROM peer_identity")).rows as [{ public_key: string }];
    await a.withTransaction(async (tx) => {
      await members.revokeMember(tx, "m", new Date(), "inv1");
      await members.recordMember(tx, { name: "m", syncUrl: url(1), address: "127.0.0.1:4001", publicKey: key }, "a", new Date(), "inv2");
    });
    // The rejoin's fresh link row is bootstrapped well before a's next check of m (60 s away).
    await eventually(async () => expect((await a.query<{ done: boolean }>("SELECT bootstrapped_at IS NOT NULL AS done FROM peer_links WHERE peer = 'm'")).rows).toEqual([{ done: true }]), 5000, 100);
    await write("after-rejoin");
    await eventually(async () => expect((await notesAtM()).at(-1)).toBe("after-rejoin"), 10_000, 100);
  }, 30_000);
});

describe("a member no key can be derived with", () => {
  test("its link row holds the outbox only until its backlog is older than PEER_BACKLOG_MAX_AGE_MS: then dropped, pruned, and it is due a bootstrap", async () => {
    const db = await freshDb("pruneu");
    const [port] = await freePorts(1);
    // 32 zero bytes: a low-order X25519 point (what a lying member could introduce).
    await db.withTransaction((tx) => members.recordMember(tx, { name: "z", syncUrl: "http://127.0.0.1:1", address: "127.0.0.1:1", publicKey: "A".repeat(43) }, "y", new Date(), "invz"));
    const sync = new PeerSync(
      {
        self: "u",
        publicAddress: "127.0.0.1:4009",
        syncUrl: `http://127.0.0.1:${port}`,
        peers: [],
        listen: { host: "127.0.0.1", port: port! },
        intervalMs: 200,
        failuresToDown: 1,
        timeoutMs: 1000,
        windowMs: 60_000,
        outboxPollMs: 50,
        outboxBatch: 100,
        backlogMaxAgeMs: 1000,
      },
      { db, logger: createLogger("peer-sync", "silent"), registry: createRegistry("peer-sync"), kinds },
    );
    await sync.start();
    syncs.push(sync);
    expect(sync.linkStates()).toEqual({});
    for (const t of ["z1", "z2", "z3"]) await db.query("INSERT INTO peer_outbox (kind, payload) VALUES ('test.note', $1)", [JSON.stringify({ text: t })]);
    // Dropped past the age (measured every second), pruned at once: the newest row (at the cursor) stays.
    await eventually(async () => expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM peer_outbox")).rows[0]!.n).toBe(1), 10_000, 100);
    expect((await db.query<{ due: boolean }>("SELECT bootstrapped_at IS NULL AS due FROM peer_links WHERE peer = 'z'")).rows).toEqual([{ due: true }]);
  }, 30_000);
});
