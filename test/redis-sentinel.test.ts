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
import { createRedisClient, redisRetryDelay } from "@pesan/shared/bus";
import { Redis } from "ioredis";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { describeFailover, failoverUnderLoad } from "./support/failover.ts";
import { requireTools } from "./support/needs.ts";
import { until } from "./support/patroni.ts";
import { DOWN_AFTER_MS, RedisSentinelSet } from "./support/redis-ha.ts";

requireTools("redis");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), "pesan-redis-sentinel-"));
let set: RedisSentinelSet;
let db: TestDatabase;
let cluster: Cluster;
const DETECT = `down-after ${DOWN_AFTER_MS} ms`;
const waitPromoted = (old: number) => set.waitPromoted(old, 45_000);

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
  const f = await failoverUnderLoad({ cluster, dbUrl: db.url, label: "rsn", fault: () => set.killPrimary(), waitPromoted, recover: async () => undefined });
  console.log(`redis sentinel, primary killed: ${describeFailover(f, DETECT)}`);
  // The killed primary comes back (with its append-only file) and the sentinels make it a replica.
  set.server(f.old).restart();
  await set.waitReplica(f.old);
}, 180_000);

test("a primary that stops answering but stays up (SIGSTOP): the processes move to the promoted replica without it, and it rejoins as a replica", async () => {
  const f = await failoverUnderLoad({
    cluster,
    dbUrl: db.url,
    label: "rsp",
    waitPromoted,
    fault: async () => {
      const port = (await set.primaryPort())!;
      set.server(port).signal("SIGSTOP");
      return port;
    },
    recover: async (old) => {
      // Answered already while the old primary is still frozen with every connection to it
      // open: the processes left it on the sentinels' word (+switch-master), not on an error.
      set.server(old).signal("SIGCONT");
      await set.waitReplica(old);
    },
  });
  console.log(`redis sentinel, primary stopped: ${describeFailover(f, DETECT)}`);
}, 180_000);

/**
 * Disconnects c while it is asking the sentinels for the primary (they are stopped meanwhile,
 * so the question is certainly in flight), waits for ioredis to end it, then for it to be
 * ready again by itself.
 */
async function endWhileAskingSentinels(c: Redis): Promise<void> {
  let ended = false;
  c.once("end", () => (ended = true));
  for (const s of set.sentinels) s.signal("SIGSTOP");
  try {
    c.disconnect(true);
    await until("reconnecting: asking the sentinels", 5000, async () => (c.status === "connecting" ? true : undefined), 10);
    await sleep(200);
    c.disconnect(true);
  } finally {
    for (const s of set.sentinels) s.signal("SIGCONT");
  }
  await until("ioredis ending the connection", 5000, async () => (ended ? true : undefined), 20);
  await until("the connection ready again", 10_000, async () => (c.status === "ready" ? true : undefined), 50);
}

test("a connection disconnected while it asks the sentinels for the primary connects again by itself (ioredis alone ends it for good)", async () => {
  // What +switch-master during a reconnect does (ioredis's failover detector disconnects the
  // connector): reproduced with disconnect(true) while the question is in flight.
  const c = createRedisClient(set.url, { maxRetriesPerRequest: null, retryStrategy: (n) => redisRetryDelay(n) }) as Redis;
  c.on("error", () => undefined);
  try {
    expect(await c.ping()).toBe("PONG");
    await endWhileAskingSentinels(c);
    expect(await c.ping()).toBe("PONG");
  } finally {
    c.disconnect();
  }
}, 60_000);

test.each(["disconnect", "quit"] as const)("a connection its owner closed (%s()) stays closed: status end, no reconnect within 3 s, at the primary or the sentinels", async (how) => {
  // The connection's name marks it in CLIENT LIST at the primary (ioredis names the data
  // connection, not its questions to the sentinels: those are counted by the "connecting" event).
  const name = `closed-${how}-${process.pid}`;
  const primary = (await set.primaryPort())!;
  const c = createRedisClient(set.url, { maxRetriesPerRequest: null, connectionName: name }) as Redis;
  c.on("error", () => undefined);
  const admin = new Redis({ port: primary, host: "127.0.0.1", lazyConnect: true });
  admin.on("error", () => undefined);
  await admin.connect();
  const named = async () => ((await admin.call("CLIENT", "LIST")) as string).split("\n").filter((l) => l.includes(` name=${name} `)).length;
  try {
    expect(await c.ping()).toBe("PONG");
    expect(await named()).toBe(1);
    let connecting = 0;
    c.on("connecting", () => connecting++);
    c.on("reconnecting", () => connecting++);
    if (how === "quit") await c.quit();
    else c.disconnect();
    await until("the connection ended", 5000, async () => (c.status === "end" ? true : undefined), 20);
    // Past the longest reconnect delay (1 s) three times over.
    await sleep(3000);
    expect({ status: c.status, connecting, atPrimary: await named() }).toEqual({ status: "end", connecting: 0, atPrimary: 0 });
  } finally {
    c.disconnect();
    admin.disconnect();
  }
}, 30_000);

test("without a retryStrategy of the caller's, a Sentinel connection reconnects with the jittered delays (50 ms to 1 s), and after an unexpected end too", async () => {
  const c = createRedisClient(set.url, { maxRetriesPerRequest: null }) as Redis;
  c.on("error", () => undefined);
  try {
    const rs = c.options.retryStrategy!;
    const delays = [1, 2, 3, 10, 50].map((n) => rs(n));
    for (const [i, d] of delays.entries()) expect(d).toBeGreaterThanOrEqual([25, 50, 100, 500, 500][i]!);
    for (const [i, d] of delays.entries()) expect(d).toBeLessThanOrEqual([50, 100, 200, 1000, 1000][i]!);
    expect(c.options.sentinelRetryStrategy).toBe(rs);
    expect(await c.ping()).toBe("PONG");
    // The unexpected end of the test above, without a retryStrategy of the caller's.
    await endWhileAskingSentinels(c);
    expect(await c.ping()).toBe("PONG");
  } finally {
    c.disconnect();
  }
}, 60_000);
