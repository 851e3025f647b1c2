/**
 * Redis restarts under load (a redis-server of this file's own, append-only file on, killed
 * with SIGKILL and started again): a cluster (1 gateway, 2 routers), an embedded process with
 * PGlite and a monitor-bot (lease and bot state in that Redis, Telegram faked) all use it.
 * While it is down every process keeps running and says 503 naming it; the gateway answers
 * ERR UNAVAILABLE; once it is back they all recover by themselves, and the counted load ends
 * with every message stored once and pushed to its recipient.
 */
import { firstAnswerAfter } from "./support/outage.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, ServiceProcess, startCluster, type Cluster } from "@pesan/cluster";
import { sleep, sql } from "./support/e2e.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { FakeTelegram } from "./support/fake-telegram.ts";
import { startCountedLoad, type CountedLoad } from "./support/load.ts";
import { expectExactlyOnce, expectSamePids, health, pids, waitHealthy, waitUnhealthy } from "./support/outage.ts";
import { ThrowawayRedis } from "./support/throwaway.ts";
import { RawClient } from "./support/udp.ts";

const dir = mkdtempSync(join(tmpdir(), "pesan-redis-restart-"));
let redis: ThrowawayRedis;
let db: TestDatabase;
let monitorDb: TestDatabase;
let cluster: Cluster;
let embedded: ServiceProcess;
let embeddedAddress: string;
let monitor: ServiceProcess;
let fake: FakeTelegram;

beforeAll(async () => {
  redis = await ThrowawayRedis.create();
  db = await createTestDatabase("rsrestart");
  monitorDb = await createTestDatabase("rsmon");
  fake = new FakeTelegram();
  await fake.start();
  cluster = await startCluster({ databaseUrl: db.url, redisUrl: redis.url, gateways: 1, routers: 2, busPrefix: "pesan:", logDir: dir, env: { PASSWORD_HASH_COST: "10" } });
  const [udp, http, monitorHttp] = await freePorts(3);
  embeddedAddress = `127.0.0.1:${udp}`;
  embedded = new ServiceProcess(
    "embedded",
    "embedded-pglite",
    {
      DATABASE_URL: "",
      DATA_DIR: join(dir, "pglite"),
      REDIS_URL: redis.url,
      BUS_PREFIX: "emb:",
      MONITOR: "false",
      UDP_HOST: "127.0.0.1",
      UDP_PORT: String(udp),
      HTTP_PORT: String(http),
      PASSWORD_HASH_COST: "10",
      LOG_LEVEL: "info",
    },
    http!,
    udp,
    join(dir, "embedded.log"),
  );
  const configFile = join(dir, "monitor.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      instance: "redis-restart",
      http: { host: "127.0.0.1", port: monitorHttp },
      database: { url: monitorDb.url },
      userStats: { enabled: false },
      components: [{ type: "redis", name: "bus", url: redis.url, interval: 200, timeout: 1000 }],
      redis: { url: redis.url, prefix: "mon:" },
      telegram: { token: fake.token, adminCode: "open-sesame-42", alertInterval: 1000, pollTimeout: "1s", apiRoot: fake.url },
    }),
  );
  monitor = new ServiceProcess("monitor", "monitor-bot", { MONITOR_CONFIG: configFile, LOG_LEVEL: "info" }, monitorHttp!, undefined, join(dir, "monitor.log"));
  embedded.start();
  monitor.start();
  await Promise.all([embedded.waitReady(60_000), monitor.waitReady(30_000)]);
}, 120_000);

afterAll(async () => {
  await Promise.all([embedded?.stop(), monitor?.stop(), cluster?.stop()]);
  await fake?.close();
  await Promise.all([db?.drop(), monitorDb?.drop()]);
  await redis?.destroy();
  if (process.env.PESAN_KEEP_TEST_LOGS === "1") process.stderr.write(`restart-redis: logs kept in ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}, 60_000);

test("a Redis restart under load: nobody exits, healthz 503 naming redis, ERR UNAVAILABLE meanwhile, back by itself, 0 lost, 0 duplicated", async () => {
  const gateway = cluster.gateways[0]!;
  const dependent = [...cluster.routers, gateway, embedded, monitor];
  const before = pids(dependent);
  // The bot answers (it polls Telegram only while it holds the lease in Redis).
  expect((await fake.ask(7001, "/help"))[0]).toMatch(/^Sorry, this bot only answers registered members/);

  const loads: Array<[CountedLoad, string, string]> = [];
  try {
    loads.push([await startCountedLoad({ address: cluster.addresses[0]!, label: "rsc", pairs: 3, window: 3, pauseMs: 10 }), db.url, "rsc"]);
    loads.push([await startCountedLoad({ address: embeddedAddress, label: "rse", pairs: 2, window: 2, pauseMs: 10 }), "", "rse"]);
    await sleep(1500);

    const downAt = Date.now();
    await redis.kill();
    const unhealthy = await waitUnhealthy(dependent, (p) => (p.role === "embedded" ? "bus" : "redis"));
    const detectedMs = Date.now() - downAt;
    // A request meanwhile gets its answer from the gateway: ERR UNAVAILABLE, within 3 s.
    const c = await RawClient.open(cluster.addresses[0]!);
    try {
      const t0 = Date.now();
      c.send("@down1 SERVERS");
      expect(await c.waitFor(/^@down1 /, 3500)).toMatch(/^@down1 ERR UNAVAILABLE\b/);
      expect(Date.now() - t0).toBeLessThan(3500);
    } finally {
      c.close();
    }
    const gatewayPending = ((await (await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)).json()) as { pending: number }).pending;
    await sleep(Math.max(0, 3000 - (Date.now() - downAt)));

    await redis.start();
    const upAt = Date.now();
    const resumedMs = await firstAnswerAfter(cluster.addresses[0]!, upAt);
    const healthyMs = await waitHealthy(dependent, upAt);
    await sleep(2000);
    for (const [load] of loads) await load.finish();

    expectSamePids(before);
    for (const [p, h] of unhealthy) expect([p.id, h.status]).toEqual([p.id, 503]);
    expect(resumedMs).toBeGreaterThanOrEqual(0);
    expect(resumedMs).toBeLessThan(2000);
    // What the gateway holds while Redis is away is bounded by its answer deadline.
    expect(gatewayPending).toBeLessThan(1000);
    const counts: string[] = [];
    const [clusterLoad] = loads[0]!;
    const cc = await expectExactlyOnce(db.url, clusterLoad, "rsc");
    counts.push(`cluster: ${cc.sent} sent, ${cc.retried} retried, ${cc.unavailable} ERR UNAVAILABLE`);
    // PGlite belongs to the embedded process; its ledger is checked through the protocol: every
    // SEND answered OK SENT, each body under one id, each pushed to its recipient.
    const [embLoad] = loads[1]!;
    const ids = new Map<string, string>();
    for (const m of embLoad.sent) {
      expect([m.tag, m.reply]).toEqual([m.tag, expect.stringMatching(/^OK SENT \S+ (DELIVERED|STORED)$/)]);
      ids.set(m.body, m.reply!.split(" ")[2]!);
    }
    expect(new Set(ids.values()).size).toBe(embLoad.sent.length);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const missing = embLoad.sent.filter((m) => !embLoad.receivedIds(m.pair).has(ids.get(m.body)!));
      if (missing.length === 0) break;
      if (Date.now() > deadline) expect(missing.map((m) => m.tag)).toEqual([]);
      await sleep(200);
    }
    counts.push(`embedded: ${embLoad.sent.length} sent, ${embLoad.sent.filter((m) => (m.sends ?? 0) > 1).length} retried, ${embLoad.unavailable()} ERR UNAVAILABLE`);
    // Every stored copy is one the senders were told about: nothing stored twice by a replay.
    expect((await sql<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM messages WHERE body LIKE 'rsc %'"))[0]!.n).toBe(cc.sent);
    // The bot polls again (it got the lease back).
    expect((await fake.ask(7002, "/help", 1, 10_000))[0]).toMatch(/^Sorry, this bot only answers registered members/);
    expect((await health(monitor)).status).toBe(200);
    console.log(
      `redis restart: down ${upAt - downAt} ms (all 503 after ${detectedMs} ms, gateway holding ${gatewayPending} requests); first request answered ${resumedMs} ms after it was back; ` +
        `healthy again after ${[...healthyMs].map(([p, ms]) => `${p.id} ${ms} ms`).join(", ")}; ${counts.join("; ")}`,
    );
  } finally {
    for (const [load] of loads) load.close();
  }
}, 180_000);
