/**
 * SSH probes against a real OpenSSH server (Debian's sshd on a loopback port, throwaway keys):
 * values read and stored, one reused connection, a wrong host key refused, the target marked
 * unreachable within one interval of sshd dying (failure action runs) and recovering when it is
 * back (recovery action runs), and a threshold action that runs once per crossing.
 */
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { freePorts } from "@pesan/cluster";
import { createMonitorApp, listDown, parseMonitorConfig, type MonitorApp, type MonitorEvent } from "../services/monitor-bot/src/index.ts";
import { createTestDatabase, queryRows, type TestDatabase } from "./support/db.ts";
import { MONITOR_DIR, NO_THRESHOLDS, lines, monitorBase, testLogger, waitFor } from "./support/monitor.ts";
import { requireTools } from "./support/needs.ts";
import { TestSshd } from "./support/sshd.ts";

const INTERVAL_MS = 300;
const OTHER_FP = "SHA256:0mE4wOz/P//s0y1zv8svt4o9RjTmLlj6et85vKUAFkk";

let db: TestDatabase;
let sshd: TestSshd;
let app: MonitorApp;
let hostEvents: string;
let cpuEvents: string;
let flag: string;
const events: MonitorEvent[] = [];

// Not a skip: without sshd this file fails naming it (./pesan test --without sshd leaves it out).
requireTools("sshd");

const rows = <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> => queryRows<T>(db.url, sql, params);

beforeAll(async () => {
  db = await createTestDatabase("monssh");
  const [port] = await freePorts(1);
  sshd = await TestSshd.create(port!);
  await sshd.start();
  hostEvents = join(sshd.dir, "host-events.log");
  cpuEvents = join(sshd.dir, "cpu-events.log");
  flag = join(sshd.dir, "flag-on");
  const target = (name: string, over: Record<string, unknown> = {}) => ({
    name,
    ...sshd.target(),
    interval: INTERVAL_MS,
    timeout: 2000,
    // A shorter pause between the two /proc/stat reads than the default's second.
    commands: { cpu: "grep '^cpu ' /proc/stat; sleep 0.1; grep '^cpu ' /proc/stat; cat /proc/loadavg" },
    ...over,
  });
  const config = parseMonitorConfig({
    ...monitorBase("ssh-test", db.url),
    userStats: { enabled: false },
    // No accidental threshold actions on a busy test machine, except the one under test.
    thresholds: NO_THRESHOLDS,
    targets: [
      target("box", { services: [{ name: "flag", command: `test -e ${flag}` }, { name: "sshd-itself", command: "true" }] }),
      target("hot", { thresholds: { cpu: { high: 0 } }, intervals: { mem: 60_000, hdd: 60_000 } }),
      target("impostor", { hostKey: OTHER_FP, interval: 60_000 }),
      // A key sshd does not know.
      target("stranger", { privateKeyFile: undefined, privateKey: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString(), interval: 60_000 }),
    ],
    actions: [
      { name: "host-changes", on: ["down", "up"], components: ["host:box"], command: `echo "$PESAN_EVENT $PESAN_COMPONENT $PESAN_STATUS $PESAN_SINCE" >> ${hostEvents}`, timeout: 5000 },
      { name: "cpu-threshold", on: ["threshold", "clear"], components: ["host:hot/cpu"], command: `echo "$PESAN_EVENT $PESAN_VALUE" >> ${cpuEvents}`, timeout: 5000 },
    ],
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger() });
  app.monitor.events.on("event", (e) => events.push(e));
  await app.start();
}, 30_000);

afterAll(async () => {
  await app?.close();
  await sshd?.close();
  await db?.drop();
});

describe("SSH probes against a real sshd", () => {
  test("CPU, RAM and disk are read, served by /api/rmon and stored", async () => {
    const host = await waitFor("all three readings of box", () => {
      const h = app.monitor.host("box");
      return h && h.metrics.cpu?.value != null && h.metrics.mem?.value != null && h.metrics.hdd?.value != null ? h : undefined;
    });
    expect(host.reachable).toBe(true);
    for (const m of ["cpu", "mem", "hdd"] as const) {
      expect(host.metrics[m]!.error).toBeUndefined();
      expect(host.metrics[m]!.value).toBeGreaterThanOrEqual(0);
      expect(host.metrics[m]!.value).toBeLessThanOrEqual(100);
    }
    // The facts beside the percentages, read by the same parsers a local target uses: sshd runs
    // on this machine, so they are this machine's.
    const memTotal = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"))![1]) * 1024;
    expect(host.metrics.mem!.total).toBe(memTotal);
    expect(host.metrics.hdd!.total).toBeGreaterThan(0);
    expect(host.metrics.cpu!.load).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
    const res = await app.api.app.inject({ method: "GET", url: "/api/rmon/box" });
    expect(res.statusCode).toBe(200);
    const body = res.json() as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(["cpu", "hdd", "mem"]);
    for (const v of Object.values(body)) expect(typeof v).toBe("number");

    await app.history.flush();
    const stored = await rows<{ metric: string; n: string; min: number; max: number }>(
      "SELECT metric, count(*) AS n, min(value) AS min, max(value) AS max FROM monitor_samples WHERE component = 'host:box' AND ok GROUP BY metric ORDER BY metric",
    );
    expect(stored.map((r) => r.metric)).toEqual(["cpu", "hdd", "mem"]);
    for (const r of stored) {
      expect(r.min).toBeGreaterThanOrEqual(0);
      expect(r.max).toBeLessThanOrEqual(100);
    }
    const src = await rows<{ source: string }>("SELECT DISTINCT source FROM monitor_samples");
    expect(src).toEqual([{ source: "ssh-test" }]);
  });

  test("service status: exit code 0 is On, anything else Off; changes are events", async () => {
    const status = async () => ((await app.api.app.inject({ method: "GET", url: "/api/svcstats" })).json() as Record<string, Record<string, { status: string; updatetime: string }>>).box;
    await waitFor("flag reported", async () => (await status())?.flag);
    expect((await status())!.flag!.status).toBe("Off");
    expect((await status())!["sshd-itself"]).toMatchObject({ status: "On", updatetime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) });
    writeFileSync(flag, "");
    await waitFor("flag On", async () => (await status())?.flag?.status === "On");
    expect(events.some((e) => e.component === "service:box/flag" && e.kind === "up" && e.status === "On")).toBe(true);
    rmSync(flag);
    await waitFor("flag Off", async () => (await status())?.flag?.status === "Off");
    expect(events.filter((e) => e.component === "service:box/flag").map((e) => e.kind)).toEqual(["down", "up", "down"]);
  });

  test("a host key that does not match the pin is refused: that target is unreachable", async () => {
    const e = await waitFor("impostor down", () => events.find((x) => x.component === "host:impostor" && x.kind === "down"));
    expect(e.detail).toMatch(/host key mismatch: 127\.0\.0\.1:\d+ presented SHA256:/);
    expect(e.detail).toContain(sshd.fingerprint);
    const res = await app.api.app.inject({ method: "GET", url: "/api/rmon/impostor" });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ error: expect.stringMatching(/unreachable/), cpu: null, mem: null, hdd: null });
  });

  test("a key the server does not accept: that target is unreachable, saying why", async () => {
    const e = await waitFor("stranger down", () => events.find((x) => x.component === "host:stranger" && x.kind === "down"));
    expect(e.detail).toMatch(/^authentication failed: /);
  });

  test("the threshold action runs once per crossing, not once per sample", async () => {
    await app.history.flush();
    await waitFor("at least 6 CPU samples of hot", async () => {
      await app.history.flush();
      const r = await rows<{ n: string }>("SELECT count(*) AS n FROM monitor_samples WHERE component = 'host:hot' AND metric = 'cpu' AND ok");
      return Number(r[0]!.n) >= 6;
    });
    await app.actions.idle();
    const fired = lines(cpuEvents);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatch(/^threshold \d+(\.\d+)?$/);
    const stored = await rows<{ kind: string }>("SELECT kind FROM monitor_events WHERE component = 'host:hot/cpu'");
    expect(stored).toEqual([{ kind: "threshold" }]);
  });

  test("one SSH connection per target is reused by every probe", () => {
    // box and hot connected once each; impostor and stranger never got a session.
    expect(sshd.log().match(/Accepted publickey/g)).toHaveLength(2);
  });

  test("sshd dies: unreachable within one interval, failure action runs; back: recovery action runs", async () => {
    expect(lines(hostEvents)).toEqual([]);
    const stoppedAt = Date.now();
    await sshd.stop();
    const down = await waitFor("host:box down", () => events.find((e) => e.component === "host:box" && e.kind === "down"), 5000, 5);
    // A probe starts every INTERVAL_MS and the refused connection fails at once; the slack is
    // for a probe in flight at the kill and a 2-core machine busy with other test files (seen:
    // 600 ms was not always enough under the full suite).
    expect(down.at.getTime() - stoppedAt).toBeLessThanOrEqual(INTERVAL_MS + 1500);
    expect(down.status).toBe("unreachable");
    expect(down.detail).toMatch(/cannot connect|closed/);

    const failure = await waitFor("failure action output", () => lines(hostEvents)[0]);
    expect(failure).toBe(`down host:box unreachable ${down.since.toISOString()}`);
    const rmon = await app.api.app.inject({ method: "GET", url: "/api/rmon/box" });
    expect(rmon.statusCode).toBe(503);
    expect(rmon.json()).toEqual({ error: expect.stringContaining("unreachable since"), since: down.since.toISOString(), cpu: null, mem: null, hdd: null });
    // Services of an unreachable host read Off (not confirmed On), without service events.
    const svc = (await app.api.app.inject({ method: "GET", url: "/api/svcstats" })).json() as Record<string, Record<string, { status: string }>>;
    await waitFor("sshd-itself Off", async () => ((await app.api.app.inject({ method: "GET", url: "/api/svcstats" })).json() as typeof svc).box?.["sshd-itself"]?.status === "Off");
    // A service check that ran while sshd was going away may have seen it Off first (a real
    // event, seen once under a loaded CI run); once the host is unreachable, its services raise
    // no events of their own.
    expect(events.some((e) => e.component === "service:box/sshd-itself" && e.at.getTime() > down.at.getTime())).toBe(false);

    // hot's own CPU probe notices within its interval too; the history has both outages.
    await waitFor("host:hot down as well", async () => {
      await app.history.flush();
      const down = (await listDown(app.db)).map((d) => d.component);
      return ["host:box", "host:hot", "host:impostor", "host:stranger"].every((c) => down.includes(c));
    });
    const stored = await rows<{ kind: string; since: Date }>("SELECT kind, since FROM monitor_events WHERE component = 'host:box' ORDER BY id");
    expect(stored).toEqual([{ kind: "down", since: down.since }]);

    await sshd.start();
    const up = await waitFor("host:box up", () => events.find((e) => e.component === "host:box" && e.kind === "up"), 10_000);
    expect(up.since).toEqual(down.since);
    const recovery = await waitFor("recovery action output", () => lines(hostEvents)[1]);
    expect(recovery).toBe(`up host:box reachable ${down.since.toISOString()}`);
    expect(lines(hostEvents)).toHaveLength(2);
    await waitFor("rmon 200 again", async () => (await app.api.app.inject({ method: "GET", url: "/api/rmon/box" })).statusCode === 200);
    await app.history.flush();
    expect((await listDown(app.db)).map((d) => d.component)).not.toContain("host:box");
    expect(existsSync(hostEvents)).toBe(true);
  });
});
