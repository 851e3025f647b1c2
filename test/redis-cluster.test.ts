/**
 * Redis without a single point of failure, Cluster form: 2 gateways and 2 routers on
 * REDIS_URL=redis+cluster://... of a cluster of this file's own (3 masters, 3 replicas;
 * test/support/redis-ha.ts), the `in` stream split into 3 hash-tagged shards (BUS_SHARDS=3), each
 * on the master its slot falls to, every router consuming every shard. Under a counted load the
 * master of the first gateway's shard is killed with SIGKILL; its replica takes over, every
 * process follows by itself, and the load ends with 0 lost, 0 duplicated. The gap is printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster as RedisCluster } from "ioredis";
import { startCluster, type Cluster } from "@pesan/cluster";
import { inStreamOf, inStreams } from "@pesan/shared/bus";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { describeFailover, failoverUnderLoad } from "./support/failover.ts";
import { requireTools } from "./support/needs.ts";
import { NODE_TIMEOUT_MS, RedisClusterSet } from "./support/redis-ha.ts";

requireTools("redis");

const SHARDS = 3;
const dir = mkdtempSync(join(tmpdir(), "pesan-redis-cluster-"));
let set: RedisClusterSet;
let db: TestDatabase;
let cluster: Cluster;

beforeAll(async () => {
  set = await RedisClusterSet.create();
  db = await createTestDatabase("rcluster");
  cluster = await startCluster({
    databaseUrl: db.url,
    redisUrl: set.url,
    gateways: 2,
    routers: 2,
    busPrefix: "pesan:",
    logDir: dir,
    env: { PASSWORD_HASH_COST: "10", BUS_SHARDS: String(SHARDS) },
  });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await db?.drop();
  await set?.close();
  if (process.env.PESAN_KEEP_TEST_LOGS === "1") process.stderr.write(`redis-cluster: logs kept in ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}, 60_000);

test("the in stream's shards spread over the masters, and the routers read every shard", async () => {
  const keys = inStreams(SHARDS).map((s) => `pesan:{${s}}`);
  const masters = new Set(await Promise.all(keys.map((k) => set.masterOf(k))));
  // The shards' tags hash to slots of more than one master (which ones is fixed by the names:
  // in:0..in:2 fall to 2 of the 3 here); no shard spans two.
  expect(masters.size).toBeGreaterThan(1);
  const r = new RedisCluster(set.url.replace("redis+cluster://", "").split(",").map((hp) => ({ host: "127.0.0.1", port: Number(hp.split(":")[1]) })));
  try {
    // An entry no router can decode, on every shard: a router reads it, drops it and deletes
    // it on acknowledgement, so each shard empties only if some router consumes it.
    for (const k of keys) await r.xadd(k, "*", "p", "not an inbound entry");
    const deadline = Date.now() + 15_000;
    for (;;) {
      const state = await Promise.all(keys.map(async (k) => ({ key: k, left: await r.xlen(k) })));
      if (state.every((x) => x.left === 0)) break;
      if (Date.now() > deadline) expect(state).toEqual(keys.map((key) => ({ key, left: 0 })));
      await new Promise((res) => setTimeout(res, 100));
    }
    // A shard's dead-letter stream shares its hash tag, so its slot and master.
    for (const k of keys) expect(await set.masterOf(`${k}:dead`)).toBe(await set.masterOf(k));
  } finally {
    r.disconnect();
  }
});

test("kill -9 the master of a gateway's shard under load: its replica takes over, every process follows, 0 lost, 0 duplicated", async () => {
  const shardKey = `pesan:{${inStreamOf(cluster.gateways[0]!.id, SHARDS)}}`;
  const f = await failoverUnderLoad({
    cluster,
    dbUrl: db.url,
    label: "rcl",
    fault: () => set.killMasterOf(shardKey),
    waitPromoted: (old) => set.waitPromoted(shardKey, old, 45_000),
    recover: async () => undefined,
  });
  console.log(`redis cluster, master of ${shardKey} killed: ${describeFailover(f, `cluster-node-timeout ${NODE_TIMEOUT_MS} ms`)}`);
}, 180_000);
