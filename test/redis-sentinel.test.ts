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

interface Failover {
  old: number;
  promoted: number;
  promotedMs: number;
  gapMs: number;
  stallMs: number;
  counts: string;
}

/**
 * A counted load through the cluster; `fault` breaks the primary (returns its port); once a
 * replica is promoted and a fresh request is answered, `recover` runs (with the load still on),
 * then the load finishes and is checked: same PIDs, every SEND stored once and pushed once.
 */
async function underLoad(label: string, fault: () => Promise<number>, recover: (old: number) => Promise<void>): Promise<Failover> {
  const address = cluster.addresses[0]!;
  const procs = [...cluster.gateways, ...cluster.routers];
  const before = pids(procs);
  const load = await startCountedLoad({ address, label, pairs: 3, window: 3, pauseMs: 10 });
  try {
    const answered = () => load.sent.filter((m) => m.reply).length;
    const waitAnswered = async (n: number, what: string) => {
      const deadline = Date.now() + 20_000;
      while (answered() < n) {
        if (Date.now() > deadline) throw new Error(`${what}: ${answered()} of ${n} SENDs answered`);
        await sleep(50);
      }
    };
    // Load flowing through the first primary before it fails.
    await waitAnswered(30, "the load did not get going");
    const faultAt = Date.now();
    const old = await fault();
    const [promoted, gapMs] = await Promise.all([
      set.waitPromoted(old, 45_000).then((port) => ({ port, ms: Date.now() - faultAt })),
      firstAnswerAfter(address, faultAt, 45_000),
    ]);
    expect(promoted.port).not.toBe(old);
    expect(gapMs).toBeGreaterThan(0);
    await recover(old);
    // The load goes on through the new primary for a while, then every SEND in flight ends.
    await waitAnswered(answered() + 30, "the load did not go on after the failover");
    await load.finish();

    expectSamePids(before);
    const c = await expectExactlyOnce(db.url, load, label);
    expect((await sql<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM messages WHERE body LIKE $1", [`${label} %`]))[0]!.n).toBe(c.sent);
    // The longest time without any answer to the load, around the fault.
    const done = load.sent.map((m) => m.doneAt!).sort((a, b) => a - b);
    let stallMs = 0;
    for (let i = 1; i < done.length; i++) stallMs = Math.max(stallMs, done[i]! - done[i - 1]!);
    // Sentinel's promotion plus a reconnect (at most 1 s apart) bounds the gap; generous for a loaded machine.
    expect(gapMs).toBeLessThan(promoted.ms + 10_000);
    return { old, promoted: promoted.port, promotedMs: promoted.ms, gapMs, stallMs, counts: `${c.sent} sent, ${c.retried} retried, ${c.unavailable} ERR UNAVAILABLE; 0 lost, 0 duplicated` };
  } finally {
    load.close();
  }
}

const describe_ = (f: Failover) =>
  `primary :${f.old} -> :${f.promoted} promoted after ${f.promotedMs} ms (down-after ${DOWN_AFTER_MS} ms); first fresh request answered ${f.gapMs} ms after the fault; longest stall of the load ${f.stallMs} ms; ${f.counts}`;

test("kill -9 the Redis primary under load: the sentinels promote a replica, every process follows, 0 lost, 0 duplicated", async () => {
  const f = await underLoad("rsn", () => set.killPrimary(), async () => undefined);
  console.log(`redis sentinel, primary killed: ${describe_(f)}`);
  // The killed primary comes back (with its append-only file) and the sentinels make it a replica.
  set.server(f.old).restart();
  await set.waitReplica(f.old);
}, 180_000);

test("a primary that stops answering but stays up (SIGSTOP): the processes move to the promoted replica without it, and it rejoins as a replica", async () => {
  const f = await underLoad(
    "rsp",
    async () => {
      const port = (await set.primaryPort())!;
      set.server(port).signal("SIGSTOP");
      return port;
    },
    async (old) => {
      // Answered already while the old primary is still frozen with every connection to it
      // open: the processes left it on the sentinels' word (+switch-master), not on an error.
      set.server(old).signal("SIGCONT");
      await set.waitReplica(old);
    },
  );
  console.log(`redis sentinel, primary stopped: ${describe_(f)}`);
}, 180_000);
