/**
 * The dashboard's HTTP side without a browser: the page and its files (served by the monitor,
 * with a CSP that allows nothing else), the snapshot, the live event stream (and a clean
 * close() while a browser still holds it open), and chart history bucketed from real rows in
 * monitor_samples.
 */
import { request } from "node:http";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PgDb } from "@pesan/shared/db";
import { createMonitorApp, parseMonitorConfig, type MonitorApp } from "../services/monitor-bot/src/index.ts";
import { insertSamples } from "../services/monitor-bot/src/history/store.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { MONITOR_DIR, testLogger } from "./support/monitor.ts";

const dir = mkdtempSync(join(tmpdir(), "pesan-dash-api-"));
let db: TestDatabase;
let app: MonitorApp;

beforeAll(async () => {
  db = await createTestDatabase("mondapi");
  const keyFile = join(dir, "id_rsa");
  writeFileSync(keyFile, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }));
  const config = parseMonitorConfig({
    instance: "dash-api",
    http: { port: 0 },
    database: { url: db.url },
    userStats: { enabled: false },
    // Port 1 on loopback: refused at once, so web1 is unreachable (and stays so).
    targets: [{ name: "web1", host: "127.0.0.1", port: 1, username: "u", privateKeyFile: keyFile, hostKey: "SHA256:0mE4wOz/P//s0y1zv8svt4o9RjTmLlj6et85vKUAFkk", interval: 60_000 }],
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger() });
  await app.start();
  // Three minutes of samples, one every 10 s, as the probes would have written them.
  const now = Date.now();
  const rows = [];
  for (let i = 18; i >= 1; i--) {
    const at = new Date(now - i * 10_000);
    rows.push({ at, component: "host:web1", metric: "cpu", value: 10 + i, ok: true, latencyMs: 5, detail: "" });
    rows.push({ at, component: "host:web1", metric: "mem", value: 50, ok: true, latencyMs: 5, detail: "" });
  }
  rows.push({ at: new Date(now - 5000), component: "host:web1", metric: "hdd", value: null, ok: false, latencyMs: 5, detail: "exit 1" });
  rows.push({ at: new Date(now - 7_200_000), component: "host:web1", metric: "cpu", value: 99, ok: true, latencyMs: 5, detail: "" });
  const pgdb = new PgDb(db.url, { max: 1 });
  await insertSamples(pgdb, "other-replica", rows);
  await pgdb.close();
}, 30_000);

afterAll(async () => {
  await app?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

test("GET / and its files: from this server only, with a strict CSP", async () => {
  const page = await app.api.app.inject({ method: "GET", url: "/" });
  expect(page.statusCode).toBe(200);
  expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
  expect(page.headers["content-security-policy"]).toMatch(/default-src 'self'; script-src 'self'/);
  expect(page.body).toContain('<script src="/dashboard.js" defer></script>');
  expect(page.body).not.toMatch(/https?:\/\//);
  for (const [url, type] of [
    ["/dashboard.js", "text/javascript; charset=utf-8"],
    ["/dashboard.css", "text/css; charset=utf-8"],
  ]) {
    const r = await app.api.app.inject({ method: "GET", url });
    expect(r.statusCode).toBe(200);
    expect(r.headers["content-type"]).toBe(type);
    expect(r.body).not.toMatch(/https?:\/\/(?!127)/);
  }
});

test("GET /api/dashboard: everything the page shows, one snapshot", async () => {
  const r = await app.api.app.inject({ method: "GET", url: "/api/dashboard" });
  expect(r.statusCode).toBe(200);
  const s = r.json() as Record<string, unknown>;
  expect(Object.keys(s).sort()).toEqual(["at", "components", "down", "instance", "messaging", "servers", "silences", "telegram", "userstats", "userstatsError"]);
  expect(s).toMatchObject({ instance: "dash-api", userstats: null, userstatsError: "disabled", telegram: null });
  expect((s.servers as unknown[])[0]).toMatchObject({ name: "web1", cpu: null, mem: null, hdd: null, services: [] });
});

test("GET /api/history/:server: bucketed averages, oldest first, inside the window; 404 for an unknown server", async () => {
  const r = await app.api.app.inject({ method: "GET", url: "/api/history/web1?minutes=5" });
  expect(r.statusCode).toBe(200);
  const h = r.json() as { server: string; step: number; cpu: Array<[string, number]>; mem: Array<[string, number]>; hdd: unknown[] };
  expect(h.server).toBe("web1");
  expect(h.step).toBe(3); // 5 minutes in at most 120 points
  expect(h.cpu).toHaveLength(18);
  expect(h.cpu[0]![1]).toBe(28);
  expect(h.cpu.at(-1)![1]).toBe(11);
  expect(h.cpu.every(([t], i) => i === 0 || t > h.cpu[i - 1]![0])).toBe(true);
  expect(h.mem.every(([, v]) => v === 50)).toBe(true);
  expect(h.hdd).toEqual([]); // failed samples are not points
  const wide = (await app.api.app.inject({ method: "GET", url: "/api/history/web1?minutes=180" })).json() as { step: number; cpu: unknown[] };
  expect(wide.step).toBe(90);
  expect(wide.cpu.length).toBeLessThanOrEqual(4);
  expect((await app.api.app.inject({ method: "GET", url: "/api/history/nope" })).statusCode).toBe(404);
});

test("GET /api/live streams snapshots; close() does not wait for the browser to leave", async () => {
  const url = new URL("/api/live", app.api.address);
  const first = await new Promise<{ type: string | undefined; text: string }>((resolve, reject) => {
    const req = request(url, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
        if (text.includes("event: snapshot\ndata: ")) resolve({ type: res.headers["content-type"], text });
      });
    });
    req.on("error", reject);
    req.end();
  });
  expect(first.type).toBe("text/event-stream; charset=utf-8");
  const data = JSON.parse(first.text.split("data: ")[1]!.split("\n")[0]!) as { instance: string };
  expect(data.instance).toBe("dash-api");
  // The stream is still open here.
  const t = Date.now();
  await app.close();
  expect(Date.now() - t).toBeLessThan(3000);
});
