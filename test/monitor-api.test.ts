/**
 * The monitoring HTTP API, through fastify's inject(): the shapes of SPEC.md ("Monitoring"),
 * the choices where it is silent (unreachable server, not yet probed, unknown server), user
 * statistics against a real users table with UTC calendar boundaries, /healthz and /metrics.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate, PgDb } from "@pesan/shared/db";
import { createLogger, Registry } from "@pesan/shared/observability";
import { buildApiApp } from "../services/monitor-bot/src/http/api.ts";
import { createMonitorMetrics } from "../services/monitor-bot/src/metrics.ts";
import { Monitor, parseMonitorConfig } from "../services/monitor-bot/src/index.ts";
import { UserStats } from "../services/monitor-bot/src/history/user-stats.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
// A Wednesday: the week began Monday 2026-11-23, the month on 2026-11-01.
const NOW = new Date("2026-11-25T12:00:00.000Z");
const logger = createLogger("monitor-api-test", "silent");
const dir = mkdtempSync(join(tmpdir(), "pesan-monitor-api-"));

let db: TestDatabase;
let pgdb: PgDb;
let app: ReturnType<typeof buildApiApp>;
let monitor: Monitor;

beforeAll(async () => {
  db = await createTestDatabase("monapi");
  pgdb = new PgDb(db.url, { max: 2 });
  await migrate(pgdb); // the messaging schema: the users table the statistics count
  const users: Array<[string, string]> = [
    ["t1", "2026-11-25T00:00:00.000Z"], // today's first instant
    ["t2", "2026-11-25T11:59:59.000Z"],
    ["y1", "2026-11-24T23:59:59.999Z"], // yesterday (Tuesday)
    ["m1", "2026-11-23T00:00:00.000Z"], // Monday: this week
    ["s1", "2026-11-22T23:59:59.999Z"], // Sunday: last week, this month
    ["o1", "2026-10-31T23:00:00.000Z"], // last month
  ];
  for (const [name, at] of users) await pgdb.query("INSERT INTO users (name, pass_hash, created_at, home_cluster) VALUES ($1, 'x', $2, 'local')", [name, at]);

  const keyFile = join(dir, "id_rsa");
  writeFileSync(keyFile, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }));
  const target = (name: string, services: string[] = []) => ({ name, host: "127.0.0.1", username: "u", privateKeyFile: keyFile, hostKey: "SHA256:0mE4wOz/P//s0y1zv8svt4o9RjTmLlj6et85vKUAFkk", services });
  const config = parseMonitorConfig({
    database: { url: db.url },
    targets: [target("web1", ["nginx", "mysql"]), target("web2", ["nginx"]), target("web3")],
    messaging: [{ name: "msg1", gateway: "127.0.0.1:4999", user: "probe", password: "secret1", expiry: "30s" }],
  });
  const registry = new Registry();
  const metrics = createMonitorMetrics(registry);
  monitor = new Monitor({ config, logger, metrics, now: () => NOW });
  monitor.hostReachable("web1", true);
  monitor.hostMetric("web1", "cpu", 37, 12);
  monitor.hostMetric("web1", "mem", 11.36, 8);
  monitor.hostMetric("web1", "hdd", 5, 9);
  monitor.service("web1", "nginx", true, 5);
  monitor.service("web1", "mysql", false, 5, "exit code 3");
  monitor.hostReachable("web2", false, "cannot connect: connect ECONNREFUSED 127.0.0.1:22");
  monitor.service("web2", "nginx", undefined, 5, "cannot connect");
  monitor.messaging("msg1", "OK", 1000, 30_000, 1010);
  monitor.component({ type: "udp", name: "gateway", address: "gw:4999", intervalMs: 1, timeoutMs: 1, forgetAfterMs: 1 }, "10.0.0.5:4999", true, 3, "yes");
  const userStats = new UserStats({ db: pgdb, now: () => NOW, logger, onCounts: (c) => Object.entries(c).forEach(([period, n]) => metrics.newUsers.set({ period }, n)) });
  app = buildApiApp({ monitor, userStats, registry, logger, checks: [{ name: "postgres", check: async () => void (await pgdb.query("SELECT 1")) }] });
});

afterAll(async () => {
  await app?.close();
  await pgdb?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const get = async (url: string) => {
  const r = await app.inject({ method: "GET", url });
  return { status: r.statusCode, body: r.json() as unknown, type: r.headers["content-type"] };
};

describe("GET /api/rmon/:server", () => {
  test("{cpu, mem, hdd} percentages of a reachable server", async () => {
    expect(await get("/api/rmon/web1")).toEqual({ status: 200, body: { cpu: 37, mem: 11.36, hdd: 5 }, type: expect.stringMatching(/^application\/json/) });
  });
  test("404 with {error} for a server the config does not name", async () => {
    expect(await get("/api/rmon/nosuch")).toEqual({ status: 404, body: { error: 'unknown server "nosuch"' }, type: expect.any(String) });
  });
  test("503 with {error, since} and null values while unreachable", async () => {
    expect(await get("/api/rmon/web2")).toEqual({
      status: 503,
      body: { error: "server web2 is unreachable since 2026-11-25T12:00:00.000Z", since: "2026-11-25T12:00:00.000Z", cpu: null, mem: null, hdd: null },
      type: expect.any(String),
    });
  });
  test("200 with nulls before the first sample", async () => {
    expect((await get("/api/rmon/web3")).body).toEqual({ cpu: null, mem: null, hdd: null });
  });
});

test("GET /api/svcstats: {server: {service: {status: On|Off, updatetime}}}", async () => {
  const { status, body } = await get("/api/svcstats");
  expect(status).toBe(200);
  expect(body).toEqual({
    web1: { nginx: { status: "On", updatetime: "2026-11-25T12:00:00.000Z" }, mysql: { status: "Off", updatetime: "2026-11-25T12:00:00.000Z" } },
    // Unreadable (host unreachable) counts as Off: it is not confirmed On.
    web2: { nginx: { status: "Off", updatetime: "2026-11-25T12:00:00.000Z" } },
  });
});

test("GET /api/messaging: {probe: {status, updatetime, delay, expired}}", async () => {
  const { body } = await get("/api/messaging");
  expect(body).toEqual({ msg1: { status: "OK", updatetime: expect.stringMatching(ISO), delay: 1, expired: 30 } });
});

test("GET /api/userstats: new users per UTC period, weeks from Monday", async () => {
  expect(await get("/api/userstats")).toEqual({ status: 200, body: { today: 2, yesterday: 1, week: 4, month: 5, total: 6 }, type: expect.any(String) });
});

test("GET /api/userstats: 503 with {error} when the database cannot be read", async () => {
  const broken = new PgDb("postgres://postgres@127.0.0.1:1/none", { max: 1 });
  const a = buildApiApp({ monitor, userStats: new UserStats({ db: broken, now: () => NOW, logger }), registry: new Registry(), logger, checks: [] });
  try {
    const r = await a.inject({ method: "GET", url: "/api/userstats" });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ error: expect.stringMatching(/^cannot read the users table: .*ECONNREFUSED/) });
  } finally {
    await a.close();
    await broken.close();
  }
});

test("extras: /api/components and /api/down", async () => {
  expect((await get("/api/components")).body).toEqual({
    gateway: { "10.0.0.5:4999": { type: "udp", status: "up", updatetime: "2026-11-25T12:00:00.000Z", latency: 0.003, detail: "yes" } },
  });
  expect((await get("/api/down")).body).toEqual([
    { component: "host:web2", since: "2026-11-25T12:00:00.000Z", detail: "cannot connect: connect ECONNREFUSED 127.0.0.1:22" },
    { component: "service:web1/mysql", since: "2026-11-25T12:00:00.000Z", detail: "exit code 3" },
  ]);
});

test("GET /healthz and /metrics", async () => {
  expect(await get("/healthz")).toMatchObject({ status: 200, body: { status: "ok", checks: { postgres: "ok" } } });
  await get("/api/userstats");
  const r = await app.inject({ method: "GET", url: "/metrics" });
  expect(r.statusCode).toBe(200);
  expect(r.body).toContain('pesan_monitor_host_percent{target="web1",resource="cpu"} 37');
  expect(r.body).toContain('pesan_monitor_host_up{target="web2"} 0');
  expect(r.body).toContain('pesan_monitor_service_up{target="web1",service="mysql"} 0');
  expect(r.body).toContain('pesan_monitor_messaging_status{probe="msg1",status="OK"} 1');
  expect(r.body).toContain('pesan_monitor_messaging_delay_seconds{probe="msg1"} 1');
  expect(r.body).toContain('pesan_monitor_component_up{type="udp",component="gateway",address="10.0.0.5:4999"} 1');
  expect(r.body).toContain('pesan_monitor_new_users{period="week"} 4');
  expect(r.body).toMatch(/pesan_monitor_probe_seconds_count\{probe="cpu",outcome="ok"\} 1/);
  expect(r.body).toContain('pesan_monitor_events_total{kind="down"} 2');
});
