/**
 * The live dashboard in a real headless Chromium (Debian's chromium, driven by playwright-core):
 * the page loads from the monitor itself (no other origin is contacted), shows a card for a
 * target watched over SSH through a real sshd and one for this machine (a local target), turns
 * the SSH one red when sshd is stopped and back when
 * it is restarted, all without a reload. Screenshots go to test-artifacts/ for a person to look at.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { freePorts, REPO_ROOT } from "@pesan/cluster";
import { migrate, PgDb } from "@pesan/shared/db";
import { createMonitorApp, parseMonitorConfig, type MonitorApp } from "../services/monitor-bot/src/index.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { MONITOR_DIR, NO_THRESHOLDS, monitorBase, testLogger } from "./support/monitor.ts";
import { requireTools } from "./support/needs.ts";
import { TestSshd } from "./support/sshd.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(REPO_ROOT, "test-artifacts");
// Not a skip: without them this file fails naming them (./pesan test --without leaves it out).
requireTools("sshd", "chromium");

let db: TestDatabase;
let sshd: TestSshd;
let app: MonitorApp;
let browser: Browser;
let page: Page;
const foreign: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase("mondash");
  const pgdb = new PgDb(db.url, { max: 1 });
  try {
    await migrate(pgdb); // the messaging schema: its users table feeds the new-user statistics
    for (const [name, daysAgo] of [["ani", 0], ["budi", 0], ["citra", 1], ["dewi", 40]] as const) {
      await pgdb.query("INSERT INTO users (name, pass_hash, created_at, home_cluster) VALUES ($1, 'x', now() - make_interval(days => $2), 'local')", [name, daysAgo]);
    }
  } finally {
    await pgdb.close();
  }
  const [sshPort, deadUdp] = await freePorts(2);
  sshd = await TestSshd.create(sshPort!);
  await sshd.start();
  const config = parseMonitorConfig({
    ...monitorBase("dash-test", db.url),
    thresholds: NO_THRESHOLDS,
    targets: [
      {
        name: "box",
        ...sshd.target(),
        interval: 300,
        timeout: 5000,
        commands: { cpu: "grep '^cpu ' /proc/stat; sleep 0.1; grep '^cpu ' /proc/stat" },
        services: [
          { name: "sshd", command: "true" },
          { name: "backup", command: "false" },
        ],
      },
      // This machine, no SSH: a card like any other.
      { name: "here", local: true, interval: 300, services: [{ name: "redis", redis: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }] },
    ],
    components: [{ type: "redis", name: "redis", url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", interval: 500 }],
    // Nothing answers there: a failing probe, which must stand out.
    messaging: [{ name: "msg1", gateway: `127.0.0.1:${deadUdp}`, user: "probe", password: "probe-secret", interval: 500, timeout: 300, expiry: 1000 }],
    // Always in effect (a week from Monday 00:00), over something that stays up: the Silenced
    // table has a row, and the down count above is not affected.
    maintenance: [{ name: "nightly", components: ["redis:*"], weekly: { day: "mon", at: "00:00", duration: "7d" } }],
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger() });
  await app.start();

  mkdirSync(ARTIFACTS, { recursive: true });
  // playwright gives the browser a fresh throwaway profile of its own.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("request", (r) => {
    if (!r.url().startsWith(app.api.address) && !r.url().startsWith("data:")) foreign.push(r.url());
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await sshd?.close();
  await db?.drop();
});

const card = () => page.locator('.card[data-server="box"]');
const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });

describe("the dashboard in Chromium", () => {
  test("loads from the monitor alone and goes live: a card per server with its gauges", async () => {
    await page.goto(`${app.api.address}/`);
    await page.waitForSelector('.card[data-server="box"][data-state="reachable"] .gauge[data-metric="RAM"] .arc', { timeout: 20_000 });
    await page.waitForSelector("#conn.live", { timeout: 15_000 });
    expect(await page.title()).toMatch(/pesan monitor/);
    expect(await card().locator(".pill").textContent()).toBe("UP");
    expect(await card().locator(".gauge").count()).toBe(3);
    // The Off service and the failing messaging probe stand out.
    await page.waitForSelector('#services tr.bad td.status.bad:text("Off")');
    expect(await page.locator("#services tr.bad td:nth-child(2)").textContent()).toBe("backup");
    await page.waitForSelector('#messaging tr.bad td.status.bad:text("FAIL")', { timeout: 15_000 });
    expect(await page.locator('#components td.status.ok:text("UP")').count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator('.stat[data-period="today"] b').textContent()).toBe("2");
    expect(await page.locator('.stat[data-period="total"] b').textContent()).toBe("4");
    // The chart fills in from /api/history/box: a CPU line through at least two samples. (Not
    // "visible": a flat line, as a machine at a steady 100% draws, has a zero-height box, which
    // Playwright calls hidden though its stroke shows.)
    // History is averaged per `step` seconds (15 s for the chart's 30 minutes), so a second
    // point comes at most one step after the first, plus a probe round and the page's 2 s
    // refresh: waiting less (as this test once did, 15 s) fails whenever the first sample
    // falls at the start of a bucket and the machine is busy.
    const cpuLine = card().locator(".chart polyline.line-cpu");
    await cpuLine.waitFor({ state: "attached", timeout: 15_000 });
    const { step } = (await (await fetch(`${app.api.address}/api/history/box?minutes=30`)).json()) as { step: number };
    expect(step).toBe(15);
    for (const deadline = Date.now() + step * 1000 + 10_000; ((await cpuLine.getAttribute("points")) ?? "").trim().split(/\s+/).length < 2; ) {
      if (Date.now() > deadline) throw new Error(`the CPU chart has fewer than 2 points: ${await cpuLine.getAttribute("points")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await shot("dashboard-up.png");
    expect(foreign).toEqual([]);
  }, 90_000);

  test("a local target has its card too: gauges with the load and the RAM and disk sizes, a chart, its services", async () => {
    const here = page.locator('.card[data-server="here"]');
    await page.waitForSelector('.card[data-server="here"][data-state="reachable"] .gauge[data-metric="Disk"] .arc', { timeout: 20_000 });
    expect(await here.locator(".gauge").count()).toBe(3);
    expect(await here.locator('.gauge[data-metric="CPU"] .label').textContent()).toMatch(/^CPU load \d+\.\d\d \d+\.\d\d \d+\.\d\d$/);
    expect(await here.locator('.gauge[data-metric="RAM"] .label').textContent()).toMatch(/^RAM of \d+\.\d (MiB|GiB|TiB)$/);
    expect(await here.locator('.gauge[data-metric="Disk"] .label').textContent()).toMatch(/^Disk of \d+\.\d (MiB|GiB|TiB|PiB)$/);
    await page.waitForSelector('.card[data-server="here"] .chip:text("redis On")', { timeout: 10_000 });
    await here.locator(".chart polyline.line-mem").waitFor({ state: "attached", timeout: 15_000 });
    await shot("dashboard-local.png");
  });

  test("the card turns red when the server's sshd stops, without a reload", async () => {
    await sshd.stop();
    await page.waitForSelector('.card[data-server="box"][data-state="unreachable"]', { timeout: 20_000 });
    expect(await card().locator(".pill").textContent()).toMatch(/^UNREACHABLE/);
    const border = await card().evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).borderTopColor);
    expect(border).toBe("rgb(217, 48, 37)");
    expect(await card().locator(".why").textContent()).toMatch(/cannot connect|refused|ECONNREFUSED/i);
    expect(await page.locator("#down-count").textContent()).toMatch(/^\d+ down$/);
    await shot("dashboard-down.png");
  });

  test("and back when sshd is restarted", async () => {
    await sshd.start();
    await page.waitForSelector('.card[data-server="box"][data-state="reachable"] .gauge[data-metric="CPU"] .arc', { timeout: 20_000 });
    const border = await card().evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).borderTopColor);
    expect(border).not.toBe("rgb(217, 48, 37)");
    await shot("dashboard-recovered.png");
    expect(foreign).toEqual([]);
  });

  test("a phone-sized screen still shows the cards one under another", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const box = await card().boundingBox();
    expect(box!.width).toBeLessThanOrEqual(390);
    // Wide tables scroll inside their own box; the page itself does not scroll sideways.
    expect(await card().evaluate((el) => el.ownerDocument.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot("dashboard-phone.png");
  });

  test("the Silenced table lists the maintenance window in effect", async () => {
    const row = page.locator('#silences tr.silence[data-kind="maintenance"]');
    await row.waitFor({ timeout: 5000 });
    expect(await row.count()).toBe(1);
    expect(await row.locator("td").allTextContents()).toEqual(["redis:*", "maintenance", expect.stringMatching(/^(\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d) UTC \(\d+[smh].* left\)$/), "maintenance nightly", "–"]);
  });
});
