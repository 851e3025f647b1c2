/**
 * The messaging probe and the component probes against a real process cluster (1 gateway,
 * 1 router, Postgres, Redis): OK with a delay while everything runs; FAIL or EXPIRED, and the
 * router's and gateway's probes down, while the router is stopped; OK again once it is back.
 */
import pg from "pg";
import { startCluster, type Cluster } from "@pesan/cluster";
import { createMonitorApp, parseMonitorConfig, type MonitorApp, type MonitorEvent } from "../services/monitor-bot/src/index.ts";
import { createTestDatabase, deleteRedisKeys, uniquePrefix, type TestDatabase } from "./support/db.ts";
import { MONITOR_DIR, monitorBase, testLogger, waitFor } from "./support/monitor.ts";

let db: TestDatabase;
let cluster: Cluster;
let app: MonitorApp;
const prefix = uniquePrefix("monmsg");
const events: MonitorEvent[] = [];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

async function count(sql: string): Promise<number> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return Number((await c.query<{ n: string }>(sql)).rows[0]!.n);
  } finally {
    await c.end();
  }
}

const messaging = async () => (await app.api.app.inject({ method: "GET", url: "/api/messaging" })).json() as Record<string, { status: string; updatetime: string; delay: number | null; expired: number }>;
const component = (name: string) => app.monitor.componentStates().find((c) => c.name === name);

beforeAll(async () => {
  db = await createTestDatabase("monmsg");
  cluster = await startCluster({
    databaseUrl: db.url,
    redisUrl: process.env.REDIS_URL!,
    gateways: 1,
    routers: 1,
    busPrefix: prefix,
    env: { PASSWORD_HASH_COST: "10", BACKEND_TIMEOUT_MS: "1000" },
  });
  const gw = cluster.gateways[0]!;
  const router = cluster.routers[0]!;
  const config = parseMonitorConfig({
    ...monitorBase("msg-test", db.url),
    defaults: { interval: 400, timeout: 1500 },
    components: [
      { type: "udp", name: "gateway", address: cluster.addresses[0] },
      { type: "http", name: "gateway-health", url: `http://127.0.0.1:${gw.httpPort}/healthz` },
      { type: "http", name: "router-health", url: `http://127.0.0.1:${router.httpPort}/healthz` },
      { type: "postgres", name: "postgres", url: db.url },
      { type: "redis", name: "redis", url: process.env.REDIS_URL },
    ],
    messaging: [{ name: "msg1", gateway: cluster.addresses[0], user: "monitor-probe", password: "probe-secret", interval: 400, timeout: 2500, expiry: 2000 }],
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger() });
  app.monitor.events.on("event", (e) => events.push(e));
  await app.start();
}, 60_000);

afterAll(async () => {
  await app?.close();
  await cluster?.stop();
  await db?.drop();
  await deleteRedisKeys(prefix);
});

test("the probe account registers itself and the probe reports OK with a delay", async () => {
  await waitFor("an OK probe", async () => (await messaging()).msg1?.status === "OK", 15_000);
  const r = (await messaging()).msg1!;
  expect(Object.keys(r).sort()).toEqual(["delay", "expired", "status", "updatetime"]);
  expect(r.updatetime).toMatch(ISO);
  expect(r.delay).toBeGreaterThan(0);
  expect(r.delay).toBeLessThan(2);
  expect(r.expired).toBe(2);
  expect(await count("SELECT count(*) AS n FROM users WHERE name = 'monitor-probe'")).toBe(1);
  await app.history.flush();
  expect(await count("SELECT count(*) AS n FROM monitor_samples WHERE component = 'messaging:msg1' AND metric = 'delay' AND ok AND value > 0")).toBeGreaterThan(0);
});

test("probe messages are deleted once received", async () => {
  await waitFor("four OK probes", async () => {
    await app.history.flush();
    return (await count("SELECT count(*) AS n FROM monitor_samples WHERE component = 'messaging:msg1' AND ok")) >= 4;
  }, 15_000);
  // At most the one in flight is still there.
  expect(await count("SELECT count(*) AS n FROM messages")).toBeLessThanOrEqual(1);
});

test("user statistics count the probe account as new today", async () => {
  // Counts are cached for a moment; the first ones were taken before the probe registered.
  const stats = await waitFor("the probe user counted", async () => {
    const res = await app.api.app.inject({ method: "GET", url: "/api/userstats" });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { total: number };
    return body.total === 1 ? body : undefined;
  });
  expect(stats).toEqual({ today: 1, yesterday: 0, week: 1, month: 1, total: 1 });
});

test("gateway, router, Postgres and Redis probes are up", async () => {
  for (const name of ["gateway", "gateway-health", "router-health", "postgres", "redis"]) {
    const c = await waitFor(`${name} probed`, () => component(name));
    expect({ name, ok: c.ok, detail: c.detail }).toEqual({ name, ok: true, detail: expect.any(String) });
  }
  expect(component("gateway")!.address).toBe(cluster.addresses[0]);
  expect(component("gateway")!.detail).toBe("yes");
});

test("router stopped: the probe reports FAIL or EXPIRED, its probes go down; back: OK again", async () => {
  const router = cluster.routers[0]!;
  await router.stop();
  const down = await waitFor("messaging:msg1 down", () => events.find((e) => e.component === "messaging:msg1" && e.kind === "down"), 15_000);
  expect(["FAIL", "EXPIRED"]).toContain(down.status);
  const r = (await messaging()).msg1!;
  expect(["FAIL", "EXPIRED"]).toContain(r.status);
  expect(r.delay).toBeNull();

  await waitFor("router-health down", () => events.find((e) => e.component.startsWith("http:router-health@") && e.kind === "down"));
  // A check in flight while the router shut down may have seen a reset; the next ones a refusal.
  await waitFor("router-health refused", () => component("router-health")?.detail.includes("ECONNREFUSED"));
  // The gateway itself answers, but /@live? needs the whole path: ERR UNAVAILABLE is not yes.
  const gwDown = await waitFor("gateway down", () => events.find((e) => e.component === `udp:gateway@${cluster.addresses[0]}` && e.kind === "down"), 10_000);
  expect(gwDown.detail).toMatch(/UNAVAILABLE|no reply/);
  expect(events.some((e) => e.component.startsWith("http:gateway-health@") && e.kind === "down")).toBe(false);

  await router.restart();
  const up = await waitFor("messaging:msg1 up", () => events.find((e) => e.component === "messaging:msg1" && e.kind === "up"), 20_000);
  expect(up.since).toEqual(down.since);
  await waitFor("OK again", async () => (await messaging()).msg1?.status === "OK", 10_000);
});
