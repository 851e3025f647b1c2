/**
 * Postgres without a single point of failure (docs/ha.md): a primary and a streaming replica
 * managed by Patroni (etcd as its store), pesan's DATABASE_URL naming both
 * (`h1,h2/db?target_session_attrs=read-write`). kill -9 of the primary's postmaster under a
 * counted load: Patroni promotes the replica, pesan's connections find it by themselves, and
 * with synchronous_mode every SEND that got OK SENT is on the new primary exactly once and was
 * pushed to its recipient. The gap (the longest stretch without an OK SENT) is printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster, type Cluster } from "@pesan/cluster";
import { sql } from "./support/e2e.ts";
import { deleteRedisKeys, uniquePrefix } from "./support/db.ts";
import { startCountedLoad, type CountedLoad } from "./support/load.ts";
import { requireTools } from "./support/needs.ts";
import { expectExactlyOnce, expectSamePids, pids, waitHealthy } from "./support/outage.ts";
import { PatroniCluster, until } from "./support/patroni.ts";

requireTools("patroni");

let ha: PatroniCluster;
let cluster: Cluster;
let logDir: string;
const prefix = uniquePrefix("pgha");
const database = "pesan_ha";

beforeAll(async () => {
  ha = await PatroniCluster.create({ synchronous: true });
  const primary = (await ha.primary())!;
  await sql(ha.nodeUrl(primary), `CREATE DATABASE ${database}`);
  logDir = mkdtempSync(join(tmpdir(), "pesan-pgha-"));
  cluster = await startCluster({
    databaseUrl: ha.url(database),
    redisUrl: process.env.REDIS_URL!,
    busPrefix: prefix,
    gateways: 1,
    routers: 2,
    env: { PASSWORD_HASH_COST: "10", LOG_LEVEL: "info" },
    logDir,
    readyTimeoutMs: 60_000,
  });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  await deleteRedisKeys(prefix);
  await ha?.close();
  if (logDir && process.env.PESAN_KEEP_TEST_LOGS !== "1") rmSync(logDir, { recursive: true, force: true });
}, 60_000);

/** OK SENT reply times (ms since epoch), in order. */
function okTimes(load: CountedLoad): number[] {
  return load.sent
    .filter((m) => m.doneAt !== undefined && /^OK SENT /.test(m.reply ?? ""))
    .map((m) => load.startedAt + m.doneAt!)
    .sort((a, b) => a - b);
}

test("synchronous_mode: kill -9 of the primary's Postgres under load; the replica is promoted, pesan follows it, every OK SENT survives exactly once", async () => {
  const procs = [...cluster.routers, ...cluster.gateways];
  const before = pids(procs);
  const load = await startCountedLoad({ address: cluster.addresses[0]!, label: "ha", pairs: 3, window: 3, pauseMs: 10, deadlineMs: 90_000 });
  try {
    // Under way: a good number of messages acknowledged before the kill.
    await until("30 OK SENT before the kill", 60_000, async () => (okTimes(load).length >= 30 ? true : undefined), 50);
    const old = (await ha.primary())!;
    const killedAt = Date.now();
    ha.killPostgres(old);
    const promoted = await ha.waitPrimary(60_000, old);
    const promotedMs = Date.now() - killedAt;
    // Work goes on against the new primary: a good number more acknowledged after the kill.
    const ackedBefore = okTimes(load).filter((t) => t < killedAt).length;
    await until("30 OK SENT after the kill", 60_000, async () => (okTimes(load).filter((t) => t > killedAt).length >= 30 ? true : undefined), 50);
    await load.finish();
    const healthyMs = await waitHealthy(cluster.routers, killedAt, 30_000);

    expectSamePids(before);
    const url = ha.nodeUrl(promoted, database);
    const counts = await expectExactlyOnce(url, load, "ha");
    const times = okTimes(load);
    const firstAfter = times.find((t) => t > killedAt)!;
    const lastBefore = [...times].reverse().find((t) => t <= killedAt)!;
    let longest = 0;
    for (let i = 1; i < times.length; i++) longest = Math.max(longest, times[i]! - times[i - 1]!);
    console.log(
      `postgres failover (synchronous_mode): killed ${old.name}'s postmaster; ${promoted.name} writable after ${promotedMs} ms; ` +
        `first OK SENT ${firstAfter - killedAt} ms after the kill (longest gap without one ${longest} ms, last one before the kill ${killedAt - lastBefore} ms before it); ` +
        `routers healthy after ${[...healthyMs.values()].join(", ")} ms; ${counts.sent} sent (${ackedBefore} acknowledged before the kill), ${counts.retried} retried, ${counts.unavailable} ERR UNAVAILABLE, 0 lost, 0 duplicated`,
    );
    expect(promoted).not.toBe(old);
  } finally {
    load.close();
  }
}, 240_000);
