/**
 * Postgres restarts under load (a throwaway cluster of this file's own, `pg_ctl stop -m
 * immediate`, as in a crash, then start): two linked clusters (a, b: gateway + router +
 * peer-sync each), a monitor-bot and an embedded process (with Postgres) all use it. While it
 * is down every process keeps running and its /healthz says 503 naming Postgres; once it is
 * back they all recover by themselves, and the counted load (clients retrying with the same tag)
 * ends with every message stored once and pushed to its recipient.
 */
import { firstAnswerAfter } from "./support/outage.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePorts, ServiceProcess } from "@pesan/cluster";
import { sleep, sql } from "./support/e2e.ts";
import { eventually, startLinkedClusters, type LinkedClusters } from "./support/clusters.ts";
import { deleteRedisKeys, uniquePrefix } from "./support/db.ts";
import { startCountedLoad, type CountedLoad } from "./support/load.ts";
import { expectExactlyOnce, expectSamePids, health, pids, waitHealthy, waitUnhealthy } from "./support/outage.ts";
import { ThrowawayPostgres } from "./support/throwaway.ts";
import { RawClient } from "./support/udp.ts";

let pg: ThrowawayPostgres;
let lc: LinkedClusters;
let monitor: ServiceProcess;
let embedded: ServiceProcess;
let embeddedAddress: string;
const embeddedPrefix = uniquePrefix("pgemb");
const savedDatabaseUrl = process.env.DATABASE_URL;

async function createDb(name: string): Promise<string> {
  await sql(pg.url, `CREATE DATABASE ${name}`);
  const u = new URL(pg.url);
  u.pathname = `/${name}`;
  return u.toString();
}

beforeAll(async () => {
  pg = await ThrowawayPostgres.create();
  // startLinkedClusters makes its databases where DATABASE_URL points: here, on our own server.
  process.env.DATABASE_URL = pg.url;
  lc = await startLinkedClusters({ names: ["a", "b"], routers: true });
  const [udp, http, monitorHttp] = await freePorts(3);
  embeddedAddress = `127.0.0.1:${udp}`;
  embedded = new ServiceProcess(
    "embedded",
    "embedded-pg",
    {
      DATABASE_URL: await createDb("emb"),
      REDIS_URL: process.env.REDIS_URL!,
      BUS_PREFIX: embeddedPrefix,
      MONITOR: "false",
      UDP_HOST: "127.0.0.1",
      UDP_PORT: String(udp),
      HTTP_PORT: String(http),
      PASSWORD_HASH_COST: "10",
      LOG_LEVEL: "info",
    },
    http!,
    udp,
    join(lc.logDir, "embedded.log"),
  );
  const monitorDb = await createDb("mon");
  const configFile = join(lc.logDir, "monitor.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      instance: "pg-restart",
      http: { host: "127.0.0.1", port: monitorHttp },
      database: { url: monitorDb },
      history: { flushEvery: 200 },
      userStats: { enabled: false },
      components: [{ type: "postgres", name: "db", url: monitorDb, interval: 200, timeout: 1000 }],
    }),
  );
  monitor = new ServiceProcess("monitor", "monitor-bot", { MONITOR_CONFIG: configFile, LOG_LEVEL: "info" }, monitorHttp!, undefined, join(lc.logDir, "monitor.log"));
  embedded.start();
  monitor.start();
  await Promise.all([embedded.waitReady(60_000), monitor.waitReady(30_000)]);
}, 120_000);

afterAll(async () => {
  process.env.DATABASE_URL = savedDatabaseUrl;
  await Promise.all([embedded?.stop(), monitor?.stop()]);
  // Logs are kept when a test failed (PESAN_KEEP_TEST_LOGS=1 keeps them always).
  await lc?.stop();
  await deleteRedisKeys(embeddedPrefix);
  await pg?.destroy();
}, 60_000);

test("a Postgres restart under load: nobody exits, healthz 503 naming postgres, back by itself, 0 lost, 0 duplicated", async () => {
  const a = lc.get("a");
  const b = lc.get("b");
  const routers = [...a.cluster!.routers, ...b.cluster!.routers];
  const gateways = [...a.cluster!.gateways, ...b.cluster!.gateways];
  const dependent = [...routers, a.peerSync, b.peerSync, monitor, embedded];
  const before = pids([...dependent, ...gateways]);

  const loads: Array<[CountedLoad, string, string]> = [];
  try {
    loads.push([await startCountedLoad({ address: a.address, label: "pga", pairs: 3, window: 3, pauseMs: 10 }), a.db.url, "pga"]);
    loads.push([await startCountedLoad({ address: b.address, label: "pgb", pairs: 2, window: 3, pauseMs: 10 }), b.db.url, "pgb"]);
    const embDb = embedded.env.DATABASE_URL!;
    loads.push([await startCountedLoad({ address: embeddedAddress, label: "pge", pairs: 2, window: 2, pauseMs: 10 }), embDb, "pge"]);
    await sleep(1500);

    const downAt = Date.now();
    await pg.stopImmediate();
    const unhealthy = await waitUnhealthy(dependent, (p) => (p.role === "embedded" ? "database" : "postgres"));
    // The gateways do not use Postgres: they stay healthy and keep answering.
    for (const g of gateways) expect((await health(g)).status).toBe(200);
    const detectedMs = Date.now() - downAt;
    await sleep(Math.max(0, 2000 - detectedMs));

    await pg.start();
    const upAt = Date.now();
    // Work resumes: a fresh request through cluster a is answered (each try a new tag, so an
    // answer to one sent while the database was away does not count).
    const resumedMs = await firstAnswerAfter(a.address, upAt);
    const healthyMs = await waitHealthy(dependent, upAt);
    await sleep(2000);
    for (const [load] of loads) await load.finish();

    expectSamePids(before);
    for (const [p, h] of unhealthy) expect([p.id, h.status]).toEqual([p.id, 503]);
    expect(resumedMs).toBeGreaterThanOrEqual(0);
    expect(resumedMs).toBeLessThan(2000);
    for (const [p, ms] of healthyMs) expect([p.id, ms]).toEqual([p.id, expect.any(Number)]);
    const counts: string[] = [];
    for (const [load, url, label] of loads) {
      const c = await expectExactlyOnce(url, load, label);
      counts.push(`${label}: ${c.sent} sent, ${c.retried} retried, ${c.unavailable} ERR UNAVAILABLE`);
    }
    // peer-sync replicates again: an account made on a after the restart reaches b.
    const c = await RawClient.open(a.address);
    try {
      expect(await c.request("REGISTER afterpg secret1")).toBe("OK REGISTERED afterpg");
    } finally {
      c.close();
    }
    await eventually(async () => expect(await sql(b.db.url, "SELECT name FROM users WHERE name = 'afterpg'")).toHaveLength(1), 10_000);
    console.log(
      `postgres restart: down ${upAt - downAt} ms (all 503 after ${detectedMs} ms); first request answered ${resumedMs} ms after it was back; ` +
        `healthy again after ${[...healthyMs].map(([p, ms]) => `${p.id} ${ms} ms`).join(", ")}; ${counts.join("; ")}`,
    );
  } finally {
    for (const [load] of loads) load.close();
  }
}, 180_000);
