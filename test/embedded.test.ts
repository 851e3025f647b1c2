/**
 * `pnpm start` as a user runs it: one process, PGlite on disk, in-process bus, real UDP.
 * kill -9 and start again: accounts and offline messages are still there.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { embeddedEnv, freePorts, ServiceProcess } from "@pesan/cluster";
import { defaultHostName } from "../services/monitor-bot/src/index.ts";
import { waitFor } from "./support/monitor.ts";
import { RawClient } from "./support/udp.ts";

const dir = mkdtempSync(join(tmpdir(), "pesan-embedded-"));
let proc: ServiceProcess;
let address: string;
let monitor: string;

beforeAll(async () => {
  const [udp] = await freePorts(1);
  const [http, monitorPort] = await freePorts(2);
  monitor = `http://127.0.0.1:${monitorPort}`;
  address = `127.0.0.1:${udp}`;
  // The embedded mode must not pick DATABASE_URL or REDIS_URL up from the test environment.
  const env = embeddedEnv({ dataDir: dir, udpPort: udp!, httpPort: http!, monitorPort: monitorPort! });
  proc = new ServiceProcess("embedded", "embedded", env, http!, udp, join(dir, "embedded.log"));
  proc.start();
  await proc.waitReady(60_000);
}, 90_000);

afterAll(async () => {
  await proc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("health says embedded PGlite (with the default shared_buffers) and in-process bus", async () => {
  const h = (await (await fetch(`http://127.0.0.1:${proc.httpPort}/healthz`)).json()) as { database: string; bus: string };
  expect(h).toMatchObject({ status: "ok", database: "pglite", bus: "memory", pglite: { shared_buffers: "16MB" } });
});

/** The embedded mode on a data directory of its own, the monitor off (not under test here). */
function embeddedWith(extra: Record<string, string>, udp: number, http: number, dataDir: string): ServiceProcess {
  const env = { ...embeddedEnv({ dataDir, udpPort: udp, httpPort: http }), ...extra };
  return new ServiceProcess("embedded", "embedded-settings", env, http, udp, undefined);
}

test("PGLITE_SHARED_BUFFERS is what PGlite runs with, and chat works with it", async () => {
  const own = mkdtempSync(join(tmpdir(), "pesan-embedded-sb-"));
  const [udp, http] = await freePorts(2);
  const p = embeddedWith({ PGLITE_SHARED_BUFFERS: "8MB" }, udp!, http!, own);
  const carol = await RawClient.open(`127.0.0.1:${udp}`);
  try {
    p.start();
    await p.waitReady(60_000);
    const h = (await (await fetch(`http://127.0.0.1:${http}/healthz`)).json()) as object;
    expect(h).toMatchObject({ status: "ok", database: "pglite", pglite: { shared_buffers: "8MB" } });
    expect(await carol.request("REGISTER carol secret3")).toBe("OK REGISTERED carol");
    expect(await carol.request("LOGIN carol secret3")).toMatch(/^OK LOGIN carol /);
    expect(await carol.request("SEND carol note to self")).toMatch(/^OK SENT \S+ DELIVERED$/);
    await carol.waitFor(/^MSG \S+ carol \S+ note to self$/);
  } finally {
    carol.close();
    await p.stop();
    rmSync(own, { recursive: true, force: true });
  }
}, 90_000);

test.each(["16", "lots", "64 MB", "64mb", "64KB", "100kB", "2GB"])("PGLITE_SHARED_BUFFERS=%j stops the start naming the setting, before any data is written", async (bad) => {
  const own = join(mkdtempSync(join(tmpdir(), "pesan-embedded-bad-")), "data");
  const [udp, http] = await freePorts(2);
  const p = embeddedWith({ PGLITE_SHARED_BUFFERS: bad }, udp!, http!, own);
  try {
    p.start();
    await expect(p.waitReady(30_000)).rejects.toThrow(/PGLITE_SHARED_BUFFERS: expected a size with a unit \(kB, MB or GB, e\.g\. 16MB\) from 128kB to 1GB/);
    expect(await p.exited).not.toBe(0);
    expect(existsSync(own)).toBe(false);
  } finally {
    await p.stop();
    rmSync(join(own, ".."), { recursive: true, force: true });
  }
}, 60_000);

test("chat, store an offline message, kill -9, restart, and get it at login", async () => {
  const alice = await RawClient.open(address);
  const bob = await RawClient.open(address);
  try {
    expect(await alice.request("REGISTER alice secret1")).toBe("OK REGISTERED alice");
    expect(await bob.request("REGISTER bob secret2")).toBe("OK REGISTERED bob");
    expect(await alice.request("LOGIN alice secret1")).toMatch(/^OK LOGIN alice /);
    expect(await bob.request("LOGIN bob secret2")).toMatch(/^OK LOGIN bob /);
    expect(await alice.request("SEND bob online hello")).toMatch(/^OK SENT \S+ DELIVERED$/);
    await bob.waitFor(/^MSG \S+ alice \S+ online hello$/);
    expect(await bob.request("LOGOUT")).toBe("OK BYE");
    const stored = await alice.request("SEND bob while you were away");
    expect(stored).toMatch(/^OK SENT \S+ STORED$/);
    const id = stored.split(" ")[2];

    await proc.kill9();
    await proc.restart(60_000);

    expect(await alice.request("REGISTER alice again12")).toMatch(/^ERR TAKEN/);
    const from = bob.lines.length;
    expect(await bob.request("LOGIN bob secret2")).toMatch(/^OK LOGIN bob /);
    await bob.waitFor(new RegExp(`^MSG ${id} alice \\S+ while you were away$`), 5000, from);
  } finally {
    alice.close();
    bob.close();
  }
}, 120_000);

test("the built-in monitor serves the API and watches this very process", async () => {
  // The messaging probe sends itself a message through the embedded gateway every 10 s.
  const deadline = Date.now() + 30_000;
  let messaging: Record<string, { status: string; delay: number | null }> = {};
  while (Date.now() < deadline) {
    messaging = (await (await fetch(`${monitor}/api/messaging`)).json()) as typeof messaging;
    if (messaging.embedded?.status === "OK") break;
    await new Promise((r) => setTimeout(r, 500));
  }
  expect(messaging.embedded).toMatchObject({ status: "OK" });
  expect(messaging.embedded!.delay).toBeGreaterThanOrEqual(0);
  // alice and bob from the test above; the probe's own account (probe-embedded, registered
  // with the password the embedded router shares, or the probe would not be OK) is no user.
  const stats = (await (await fetch(`${monitor}/api/userstats`)).json()) as Record<string, number>;
  expect(stats).toMatchObject({ today: 2, total: 2 });
  expect((await fetch(`${monitor}/healthz`)).status).toBe(200);
}, 60_000);

test("the dashboard shows this machine without SSH: gauges, a chart, and the gateway and router On", async () => {
  type Server = { name: string; reachable: boolean | null; cpu: number | null; mem: number | null; hdd: number | null; services: Array<{ name: string; status: string }> };
  const host = defaultHostName();
  // What the page renders its first view from: one card per server.
  const server = await waitFor("this machine's card with its numbers and both services On", async () => {
    const snap = (await (await fetch(`${monitor}/api/dashboard`)).json()) as { servers: Server[] };
    const s = snap.servers.find((x) => x.name === host);
    const on = (n: string) => s?.services.find((v) => v.name === n)?.status === "On";
    return s && s.cpu !== null && s.mem !== null && s.hdd !== null && on("gateway") && on("router") ? s : undefined;
  }, 30_000, 500);
  expect(server.reachable).toBe(true);
  for (const v of [server.cpu, server.mem, server.hdd]) {
    expect(v).toBeGreaterThanOrEqual(0);
    expect(v).toBeLessThanOrEqual(100);
  }
  const rmon = await fetch(`${monitor}/api/rmon/${host}`);
  expect(rmon.status).toBe(200);
  expect(await rmon.json()).toEqual({ cpu: expect.any(Number), mem: expect.any(Number), hdd: expect.any(Number) });
  const svc = (await (await fetch(`${monitor}/api/svcstats`)).json()) as Record<string, Record<string, { status: string; updatetime: string }>>;
  expect(svc[host]).toEqual({ gateway: { status: "On", updatetime: expect.any(String) }, router: { status: "On", updatetime: expect.any(String) } });
  // The chart's data: samples of this host in the history (PGlite).
  const chart = await waitFor("chart points", async () => {
    const h = (await (await fetch(`${monitor}/api/history/${host}?minutes=5`)).json()) as { cpu: unknown[]; mem: unknown[]; hdd: unknown[] };
    return h.cpu.length > 0 && h.mem.length > 0 && h.hdd.length > 0 ? h : undefined;
  }, 30_000, 500);
  expect(chart.mem.length).toBeGreaterThan(0);
  const page = await (await fetch(`${monitor}/`)).text();
  expect(page).toMatch(/<html/i);
}, 60_000);

