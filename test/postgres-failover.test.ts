/**
 * Postgres without a single point of failure (docs/ha.md): a primary and a streaming replica
 * managed by Patroni (etcd as its store), pesan's DATABASE_URL naming both
 * (`h1,h2/db?target_session_attrs=read-write`). kill -9 of the primary's postmaster under a
 * counted load: Patroni promotes the replica and pesan's connections find it by themselves.
 * Which acknowledged messages survive depends on one setting, and both promises are tested:
 * - synchronous_mode: every SEND that got OK SENT is on the new primary exactly once and was
 *   pushed to its recipient, also when the replica had stopped receiving WAL before the kill
 *   (then COMMITs wait, and nobody is told OK SENT), and when the primary's Patroni dies with
 *   it (then the replica waits for the leader key's ttl);
 * - asynchronous replication: what the replica had not yet received when the primary died is
 *   lost, OK SENT or not (the test stalls the stream to make that tail certain); nothing older.
 * The routers say 503 naming postgres while there is no primary. The gap (the longest stretch
 * without an OK SENT) is printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster, type Cluster } from "@pesan/cluster";
import { PgDb } from "@pesan/shared/db";
import { sentId, sleep, sql } from "./support/e2e.ts";
import { deleteRedisKeys, uniquePrefix } from "./support/db.ts";
import { startCountedLoad, type CountedLoad } from "./support/load.ts";
import { requireTools } from "./support/needs.ts";
import { expectExactlyOnce, expectSamePids, pids, waitHealthy, waitUnhealthy } from "./support/outage.ts";
import { PatroniCluster, until, type PatroniNode } from "./support/patroni.ts";

requireTools("patroni");

const DATABASE = "pesan_ha";

interface Setup {
  ha: PatroniCluster;
  cluster: Cluster;
  close(): Promise<void>;
}

/** A Patroni pair and a pesan cluster (1 gateway, 2 routers) on its multi-host URL. */
async function setUp(synchronous: boolean): Promise<Setup> {
  const ha = await PatroniCluster.create({ synchronous });
  const prefix = uniquePrefix(synchronous ? "pghas" : "pghaa");
  const logDir = mkdtempSync(join(tmpdir(), "pesan-pgha-"));
  let cluster: Cluster | undefined;
  const close = async () => {
    await cluster?.stop();
    await deleteRedisKeys(prefix);
    await ha.close();
    if (process.env.PESAN_KEEP_TEST_LOGS !== "1") rmSync(logDir, { recursive: true, force: true });
  };
  try {
    await sql(ha.nodeUrl((await ha.primary())!), `CREATE DATABASE ${DATABASE}`);
    cluster = await startCluster({
      databaseUrl: ha.url(DATABASE),
      redisUrl: process.env.REDIS_URL!,
      busPrefix: prefix,
      gateways: 1,
      routers: 2,
      env: { PASSWORD_HASH_COST: "10", LOG_LEVEL: "info" },
      logDir,
      readyTimeoutMs: 60_000,
    });
  } catch (e) {
    await close();
    throw e;
  }
  return { ha, cluster, close };
}

/** OK SENT reply times (ms since epoch), in order. */
function okTimes(load: CountedLoad): number[] {
  return load.sent
    .filter((m) => m.doneAt !== undefined && /^OK SENT /.test(m.reply ?? ""))
    .map((m) => load.startedAt + m.doneAt!)
    .sort((a, b) => a - b);
}

const okAfter = (load: CountedLoad, t: number) => okTimes(load).filter((x) => x > t).length;

/** Polls until `n` more OK SENT replies came after `t`. */
const acknowledgedAfter = (load: CountedLoad, t: number, n: number, what: string) => until(`${n} OK SENT ${what}`, 60_000, async () => (okAfter(load, t) >= n ? true : undefined), 50);

/** The longest stretch without an OK SENT while the load ran (the outage, as clients saw it). */
function longestGap(load: CountedLoad): number {
  const t = okTimes(load);
  let longest = 0;
  for (let i = 1; i < t.length; i++) longest = Math.max(longest, t[i]! - t[i - 1]!);
  return longest;
}

function startLoad(s: Setup, label: string): Promise<CountedLoad> {
  return startCountedLoad({ address: s.cluster.addresses[0]!, label, pairs: 3, window: 3, pauseMs: 10, deadlineMs: 90_000 });
}

/** kill -9 of the primary's postmaster (and `also`); resolves with the promoted node and how long it took. */
async function failOver(ha: PatroniCluster, old: PatroniNode, also: number[] = []): Promise<{ killedAt: number; promoted: PatroniNode; promotedMs: number }> {
  const killedAt = Date.now();
  ha.killPostgres(old, also);
  const promoted = await ha.waitPrimary(60_000, old);
  return { killedAt, promoted, promotedMs: Date.now() - killedAt };
}

describe("synchronous_mode", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setUp(true);
  }, 180_000);
  afterAll(async () => s?.close(), 60_000);

  test("kill -9 of the primary's Postgres under load: the replica is promoted, pesan follows it, every OK SENT survives exactly once", async () => {
    const { ha, cluster } = s;
    const before = pids([...cluster.routers, ...cluster.gateways]);
    const load = await startLoad(s, "hs");
    try {
      await acknowledgedAfter(load, 0, 30, "before the kill");
      const old = (await ha.primary())!;
      // While there is no primary the routers' /healthz says 503 naming postgres (polled from the kill on).
      const unhealthy = waitUnhealthy(cluster.routers, () => "postgres", 30_000);
      const { killedAt, promoted, promotedMs } = await failOver(ha, old);
      await unhealthy;
      await acknowledgedAfter(load, killedAt, 30, "after the kill");
      await load.finish();
      const healthyMs = await waitHealthy(cluster.routers, killedAt, 30_000);

      expect(promoted).not.toBe(old);
      expectSamePids(before);
      const counts = await expectExactlyOnce(ha.nodeUrl(promoted, DATABASE), load, "hs");
      console.log(
        `postgres failover (synchronous_mode): kill -9 of ${old.name}'s postmaster; ${promoted.name} writable after ${promotedMs} ms; ` +
          `longest gap without an OK SENT ${longestGap(load)} ms; routers healthy after ${[...healthyMs.values()].join(", ")} ms; ` +
          `${counts.sent} sent (${load.sent.length - okAfter(load, killedAt)} acknowledged before the kill), ${counts.retried} retried, ${counts.unavailable} ERR UNAVAILABLE; 0 lost, 0 duplicated`,
      );
    } finally {
      load.close();
    }
  }, 240_000);

  test("the replica stops receiving WAL, then the primary dies: COMMITs waited, nobody was told OK SENT for what is lost, every OK SENT survives exactly once", async () => {
    const { ha } = s;
    // The old primary has rejoined as the synchronous replica of the new one.
    await ha.waitReplicating(120_000);
    const primary = (await ha.primary())!;
    const replica = ha.nodes.find((n) => n !== primary)!;
    // Named first, the replica (read-only, but up) is passed over for the primary.
    const db = new PgDb(`postgres://postgres@127.0.0.1:${replica.pgPort},127.0.0.1:${primary.pgPort}/${DATABASE}?target_session_attrs=read-write`, { max: 1 });
    try {
      expect((await db.query<{ port: number }>("SELECT inet_server_port() AS port")).rows[0]!.port).toBe(primary.pgPort);
    } finally {
      await db.close();
    }
    const load = await startLoad(s, "hw");
    try {
      await acknowledgedAfter(load, 0, 20, "before the stall");
      const old = (await ha.primary())!;
      const walsenders = await ha.stallReplication(old);
      const stalledAt = Date.now();
      // The experiment's window: SENDs keep coming for 2 s while the replica gets nothing.
      await sleep(2000);
      const { killedAt, promoted, promotedMs } = await failOver(ha, old, walsenders);
      await acknowledgedAfter(load, killedAt, 30, "after the kill");
      await load.finish();

      // Nothing was acknowledged while the replica could not confirm it (a reply in flight at
      // the stall is allowed its half second).
      expect(okTimes(load).filter((t) => t > stalledAt + 500 && t <= killedAt)).toEqual([]);
      const counts = await expectExactlyOnce(ha.nodeUrl(promoted, DATABASE), load, "hw");
      console.log(
        `postgres failover (synchronous_mode, replication stalled 2 s before the kill): ${promoted.name} writable after ${promotedMs} ms; ` +
          `longest gap without an OK SENT ${longestGap(load)} ms; ${counts.sent} sent, ${counts.retried} retried; 0 lost, 0 duplicated`,
      );
    } finally {
      load.close();
    }
  }, 300_000);

  test("the primary's whole node dies (Patroni with it): the replica takes over once the leader key expires (ttl), every OK SENT survives exactly once", async () => {
    const { ha } = s;
    await ha.waitReplicating(120_000);
    const load = await startLoad(s, "hn");
    try {
      await acknowledgedAfter(load, 0, 20, "before the kill");
      const old = (await ha.primary())!;
      const killedAt = Date.now();
      await ha.killNode(old);
      const promoted = await ha.waitPrimary(90_000, old);
      const promotedMs = Date.now() - killedAt;
      await acknowledgedAfter(load, killedAt, 30, "after the kill");
      await load.finish();

      expect(promoted).not.toBe(old);
      const counts = await expectExactlyOnce(ha.nodeUrl(promoted, DATABASE), load, "hn");
      console.log(
        `postgres failover (synchronous_mode, the primary's Patroni killed too; ttl 10 s): ${promoted.name} writable after ${promotedMs} ms; ` +
          `longest gap without an OK SENT ${longestGap(load)} ms; ${counts.sent} sent, ${counts.retried} retried; 0 lost, 0 duplicated`,
      );
    } finally {
      load.close();
    }
  }, 300_000);
});

describe("asynchronous replication", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setUp(false);
  }, 180_000);
  afterAll(async () => s?.close(), 60_000);

  test("what the replica had not received when the primary died is lost, OK SENT or not; nothing older is", async () => {
    const { ha } = s;
    const load = await startLoad(s, "ha");
    try {
      await acknowledgedAfter(load, 0, 20, "before the stall");
      const old = (await ha.primary())!;
      const walsenders = await ha.stallReplication(old);
      const stalledAt = Date.now();
      await acknowledgedAfter(load, stalledAt, 20, "while the replica gets nothing");
      const { killedAt, promoted, promotedMs } = await failOver(ha, old, walsenders);
      await acknowledgedAfter(load, killedAt, 20, "after the kill");
      await load.finish();

      const rows = await sql<{ id: string }>(ha.nodeUrl(promoted, DATABASE), "SELECT id FROM messages WHERE body LIKE 'ha %'");
      const stored = new Set(rows.map((r) => r.id));
      const acked = load.sent.filter((m) => /^OK SENT /.test(m.reply ?? ""));
      const lost = acked.filter((m) => !stored.has(sentId(m.reply!)));
      const lostTimes = lost.map((m) => load.startedAt + m.doneAt!);
      // The acknowledged tail the replica never got is gone...
      expect(lost.length).toBeGreaterThan(0);
      // ...and only that tail: nothing acknowledged well before the stall, nor anything the new
      // primary acknowledged (a reply in flight at the kill may arrive a moment after it).
      expect(lostTimes.filter((t) => t < stalledAt - 1000 || t > killedAt + promotedMs)).toEqual([]);
      console.log(
        `postgres failover (asynchronous, replication stalled before the kill): ${promoted.name} writable after ${promotedMs} ms; ` +
          `${lost.length} of ${acked.length} acknowledged messages lost (the replica got nothing for the last ${killedAt - stalledAt} ms before the kill); longest gap ${longestGap(load)} ms`,
      );
    } finally {
      load.close();
    }
  }, 300_000);
});
