/**
 * A local target (no SSH) against this machine's real /proc and statfs: /api/rmon and the
 * dashboard's numbers agree with /proc/meminfo and fs.statfs of the configured path, the
 * services are real listeners that flip Off when closed and On when back, and a `replicas: true`
 * service follows a name through a real DNS server on loopback (test/support/dns.ts), one
 * service per A record, as under Compose with `--scale`.
 */
import { mkdtempSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "@pesan/cluster";
import { createMonitorApp, parseMonitorConfig, type MonitorApp, type MonitorEvent } from "../services/monitor-bot/src/index.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { TestDns } from "./support/dns.ts";
import { MONITOR_DIR, NO_THRESHOLDS, monitorBase, testLogger, waitFor } from "./support/monitor.ts";

const INTERVAL_MS = 300;
const FORGET_MS = 1500;

let db: TestDatabase;
let dir: string;
let app: MonitorApp;
let dns: TestDns;
let tcpPort: number;
let poolPort: number;
let tcp: Server | undefined;
let web: HttpServer;
const pool = new Map<string, Server>();
const events: MonitorEvent[] = [];

type SvcStats = Record<string, Record<string, { status: "On" | "Off"; updatetime: string }>>;

async function listen(port: number, host: string): Promise<Server> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, host, () => resolve());
  });
  return s;
}

const close = (s: Server | undefined) => new Promise<void>((r) => (s ? s.close(() => r()) : r()));

async function get<T>(url: string): Promise<{ status: number; body: T }> {
  const r = await app.api.app.inject({ method: "GET", url });
  return { status: r.statusCode, body: r.json() as T };
}

/** A service's status once it was probed after `after` (so not a reading from before the change). */
async function statusAfter(service: string, after: number, want?: "On" | "Off"): Promise<"On" | "Off"> {
  return waitFor(`${service} probed${want ? ` ${want}` : ""}`, async () => {
    const s = (await get<SvcStats>("/api/svcstats")).body.here?.[service];
    return s && Date.parse(s.updatetime) > after && (want === undefined || s.status === want) ? s.status : undefined;
  });
}

beforeAll(async () => {
  db = await createTestDatabase("monlocal");
  dir = mkdtempSync(join(tmpdir(), "pesan-monitor-local-"));
  [tcpPort, poolPort] = (await freePorts(2)) as [number, number];
  tcp = await listen(tcpPort, "127.0.0.1");
  for (const ip of ["127.0.0.1", "127.0.0.2", "127.0.0.3"]) pool.set(ip, await listen(poolPort, ip));
  web = createHttpServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => web.listen(0, "127.0.0.1", () => r()));
  const webPort = (web.address() as { port: number }).port;
  dns = new TestDns();
  await dns.start();
  dns.records.set("pool.test", ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
  const config = parseMonitorConfig({
    ...monitorBase("local-test", db.url),
    userStats: { enabled: false },
    defaults: { interval: INTERVAL_MS, timeout: 1000, forgetAfter: FORGET_MS },
    thresholds: NO_THRESHOLDS,
    targets: [
      {
        name: "here",
        local: true,
        disk: dir,
        services: [
          { name: "listener", tcp: `127.0.0.1:${tcpPort}` },
          { name: "web", http: `http://127.0.0.1:${webPort}/` },
          { name: "pool", tcp: `pool.test:${poolPort}`, replicas: true },
          { name: "shell", command: "true" },
        ],
      },
    ],
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger(), resolve: dns.resolver() });
  app.monitor.events.on("event", (e) => events.push(e));
  await app.start();
}, 30_000);

afterAll(async () => {
  await app?.close();
  await close(tcp);
  for (const s of pool.values()) await close(s);
  if (web) await new Promise<void>((r) => web.close(() => r()));
  await dns?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("/api/rmon has this machine's CPU, RAM and disk; RAM and disk agree with /proc/meminfo and statfs", async () => {
  const rmon = await waitFor("all three readings", async () => {
    const r = await get<{ cpu: number | null; mem: number | null; hdd: number | null }>("/api/rmon/here");
    return r.status === 200 && r.body.cpu !== null && r.body.mem !== null && r.body.hdd !== null ? r.body : undefined;
  });
  expect(Object.keys(rmon).sort()).toEqual(["cpu", "hdd", "mem"]);
  for (const v of Object.values(rmon)) {
    expect(v).toBeGreaterThanOrEqual(0);
    expect(v).toBeLessThanOrEqual(100);
  }
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(meminfo)![1]);
  // Memory moves between two reads; the share must be close, the total exact.
  expect(Math.abs(rmon.mem! - 100 * (1 - kb("MemAvailable") / kb("MemTotal")))).toBeLessThan(5);
  const fs = statfsSync(dir);
  const used = fs.blocks - fs.bfree;
  expect(Math.abs(rmon.hdd! - (100 * used) / (used + fs.bavail))).toBeLessThan(0.5);

  const snap = await get<{ servers: Array<{ name: string; reachable: boolean; cpu: number; memTotal: number; hddTotal: number; load: number[]; services: unknown[] }> }>("/api/dashboard");
  const here = snap.body.servers.find((s) => s.name === "here")!;
  expect(here).toMatchObject({ reachable: true, memTotal: kb("MemTotal") * 1024, hddTotal: fs.blocks * fs.bsize });
  // The load averages as /proc/loadavg has them (the 15-minute one barely moves between two reads).
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
  expect(here.load).toHaveLength(3);
  expect(Math.abs(here.load[2]! - load[2]!)).toBeLessThan(0.5);

  // The chart's history: the samples are stored like an SSH target's.
  await waitFor("stored samples", async () => {
    await app.history.flush();
    const h = await get<{ cpu: unknown[]; mem: unknown[]; hdd: unknown[] }>("/api/history/here?minutes=5");
    return h.status === 200 && h.body.cpu.length > 0 && h.body.mem.length > 0 && h.body.hdd.length > 0;
  });
});

test("/api/svcstats lists the services On; a listener that closes is Off, and On again when back", async () => {
  const all = await waitFor("every service reported", async () => {
    const s = (await get<SvcStats>("/api/svcstats")).body.here;
    return s && ["listener", "web", "shell", "pool@127.0.0.1", "pool@127.0.0.2", "pool@127.0.0.3"].every((n) => s[n]?.status === "On") ? s : undefined;
  });
  expect(all.listener!.updatetime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  let t = Date.now();
  await close(tcp);
  tcp = undefined;
  expect(await statusAfter("listener", t, "Off")).toBe("Off");
  expect(events).toContainEqual(expect.objectContaining({ component: "service:here/listener", kind: "down", status: "Off" }));
  // The others are untouched.
  expect((await get<SvcStats>("/api/svcstats")).body.here!.web!.status).toBe("On");

  t = Date.now();
  tcp = await listen(tcpPort, "127.0.0.1");
  expect(await statusAfter("listener", t, "On")).toBe("On");
  expect(events).toContainEqual(expect.objectContaining({ component: "service:here/listener", kind: "up", status: "On" }));
});

test("replicas: one service per A record; a dead replica is Off, a removed one is dropped after forgetAfter", async () => {
  await waitFor("three replicas On", async () => {
    const s = (await get<SvcStats>("/api/svcstats")).body.here ?? {};
    return ["127.0.0.1", "127.0.0.2", "127.0.0.3"].every((ip) => s[`pool@${ip}`]?.status === "On");
  });
  // One replica stops (its container dies): only that one is Off.
  let t = Date.now();
  await close(pool.get("127.0.0.2"));
  pool.delete("127.0.0.2");
  expect(await statusAfter("pool@127.0.0.2", t, "Off")).toBe("Off");
  expect((await get<SvcStats>("/api/svcstats")).body.here!["pool@127.0.0.1"]!.status).toBe("On");
  expect(events).toContainEqual(expect.objectContaining({ component: "service:here/pool@127.0.0.2", kind: "down" }));

  // Docker's DNS drops it: still shown (Off) for forgetAfter, then gone, and its outage closed.
  t = Date.now();
  dns.records.set("pool.test", ["127.0.0.1", "127.0.0.3"]);
  expect(await statusAfter("pool@127.0.0.2", t + INTERVAL_MS, "Off")).toBe("Off");
  await waitFor("pool@127.0.0.2 forgotten", async () => !(await get<SvcStats>("/api/svcstats")).body.here!["pool@127.0.0.2"], FORGET_MS + 5000);
  expect(Date.now() - t).toBeGreaterThanOrEqual(FORGET_MS - INTERVAL_MS);
  expect(events).toContainEqual(expect.objectContaining({ component: "service:here/pool@127.0.0.2", kind: "up", status: "gone" }));
  const metrics = await (await app.api.app.inject({ method: "GET", url: "/metrics" })).body;
  expect(metrics).not.toContain('service="pool@127.0.0.2"');
  expect(metrics).toContain('pesan_monitor_service_up{target="here",service="pool@127.0.0.1"');

  // A new replica (scaled up) joins at the next round.
  pool.set("127.0.0.4", await listen(poolPort, "127.0.0.4"));
  dns.records.set("pool.test", ["127.0.0.1", "127.0.0.3", "127.0.0.4"]);
  t = Date.now();
  expect(await statusAfter("pool@127.0.0.4", t, "On")).toBe("On");
});

test("replicas: a name that resolves to nothing shows the service Off as a whole, until it resolves again", async () => {
  const t = Date.now();
  dns.records.delete("pool.test");
  expect(await statusAfter("pool", t, "Off")).toBe("Off");
  const down = events.find((e) => e.component === "service:here/pool" && e.kind === "down");
  expect(down?.detail).toMatch(/cannot resolve pool\.test/);
  dns.records.set("pool.test", ["127.0.0.1"]);
  await waitFor("the bare pool entry gone once it resolves", async () => {
    const s = (await get<SvcStats>("/api/svcstats")).body.here!;
    return !s.pool && s["pool@127.0.0.1"]?.status === "On";
  });
  expect(events).toContainEqual(expect.objectContaining({ component: "service:here/pool", kind: "up", detail: expect.stringMatching(/resolves again/) }));
});
