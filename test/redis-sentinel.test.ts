/**
 * Redis without a single point of failure, Sentinel form: a cluster (1 gateway, 2 routers) on
 * REDIS_URL=redis+sentinel://... of a set of this file's own (a primary, two replicas, three
 * sentinels; test/support/redis-ha.ts). Under a counted load of tagged SENDs the primary is
 * killed with SIGKILL; the sentinels promote a replica, every process finds it by itself (no
 * restart, same PIDs), and the load ends with every SEND answered OK SENT, stored once and pushed
 * once to its recipient. What is lost with the primary (entries it took but had not yet
 * replicated) was never answered, so its senders retried with the same tag: the router's
 * exactly-once makes that safe. The gap, from the kill to the first fresh request answered, is
 * printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster, type Cluster } from "@pesan/cluster";
import { sleep, sql } from "./support/e2e.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startCountedLoad } from "./support/load.ts";
import { expectExactlyOnce, expectSamePids, firstAnswerAfter, pids } from "./support/outage.ts";
import { requireTools } from "./support/needs.ts";
import { DOWN_AFTER_MS, RedisSentinelSet } from "./support/redis-ha.ts";

requireTools("redis");

const dir = mkdtempSync(join(tmpdir(), "pesan-redis-sentinel-"));
let set: RedisSentinelSet;
let db: TestDatabase;
let cluster: Cluster;

beforeAll(async () => {
  set = await RedisSentinelSet.create();
  db = await createTestDatabase("rsentinel");
  cluster = await startCluster({ databaseUrl: db.url, redisUrl: set.url, gateways: 1, routers: 2, busPrefix: "pesan:", logDir: dir, env: { PASSWORD_HASH_COST: "10" } });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await db?.drop();
  await set?.close();
  if (process.env.PESAN_KEEP_TEST_LOGS === "1") process.stderr.write(`redis-sentinel: logs kept in ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}, 60_000);

test("kill -9 the Redis primary under load: the sentinels promote a replica, every process follows, 0 lost, 0 duplicated", async () => {
  const address = cluster.addresses[0]!;
  const procs = [...cluster.gateways, ...cluster.routers];
  const before = pids(procs);
  const load = await startCountedLoad({ address, label: "rsn", pairs: 3, window: 3, pauseMs: 10 });
  try {
    // Load flowing through the first primary before it dies.
    const flowing = Date.now() + 20_000;
    while (load.sent.filter((m) => m.reply?.startsWith("OK SENT")).length < 30) {
      if (Date.now() > flowing) throw new Error(`the load did not get going: ${load.sent.filter((m) => m.reply).length} answered`);
      await sleep(50);
    }
    const okBefore = load.sent.filter((m) => m.reply).length;

    const killedAt = Date.now();
    const old = await set.killPrimary();
    const [promoted, gapMs] = await Promise.all([
      set.waitPromoted(old, 45_000).then((port) => ({ port, ms: Date.now() - killedAt })),
      firstAnswerAfter(address, killedAt, 45_000),
    ]);
    expect(promoted.port).not.toBe(old);
    expect(gapMs).toBeGreaterThan(0);

    // The load goes on through the new primary for a while, then every SEND in flight ends.
    const okAtRecovery = load.sent.filter((m) => m.reply).length;
    const more = Date.now() + 20_000;
    while (load.sent.filter((m) => m.reply).length < okAtRecovery + 30) {
      if (Date.now() > more) throw new Error("the load did not go on after the failover");
      await sleep(50);
    }
    await load.finish();

    expectSamePids(before);
    const c = await expectExactlyOnce(db.url, load, "rsn");
    expect((await sql<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM messages WHERE body LIKE 'rsn %'"))[0]!.n).toBe(c.sent);
    // The longest time without any answer to the load, around the kill.
    const done = load.sent.map((m) => m.doneAt!).sort((a, b) => a - b);
    let stall = 0;
    for (let i = 1; i < done.length; i++) stall = Math.max(stall, done[i]! - done[i - 1]!);
    console.log(
      `redis sentinel failover: primary :${old} killed, :${promoted.port} promoted after ${promoted.ms} ms (down-after ${DOWN_AFTER_MS} ms); ` +
        `first fresh request answered ${gapMs} ms after the kill; longest stall of the load ${stall} ms; ` +
        `${c.sent} sent (${okBefore} answered before the kill), ${c.retried} retried, ${c.unavailable} ERR UNAVAILABLE; 0 lost, 0 duplicated`,
    );
    // Sentinel's promotion plus a reconnect (at most 1 s apart) bounds the gap; generous for a loaded machine.
    expect(gapMs).toBeLessThan(promoted.ms + 10_000);
  } finally {
    load.close();
  }
}, 180_000);
