/**
 * Alert fatigue, end to end against the fake Bot API (the only fake): an admin mutes a down
 * component and its alerts stop, /unmute brings them back, /ack holds them until it recovers
 * (the recovery is announced, the ack cleared), a non-admin is refused, a maintenance window
 * from the config holds another component's alerts from the start, and the dashboard API (on a
 * second replica too: the silences live in Postgres) shows each silence. Also the bot's menu
 * (setMyCommands) and /cpu and /system read over a real sshd with the default fact commands, and
 * for a local target from this machine's own files.
 * Real Postgres, Redis and HTTP servers; alert interval 300 ms.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { cpus, release, type, uptime } from "node:os";
import pg from "pg";
import { freePorts } from "@pesan/cluster";
import { createMonitorApp, parseMonitorConfig, type MonitorApp } from "../services/monitor-bot/src/index.ts";
import { createTestDatabase, deleteRedisKeys, queryRows, uniquePrefix, type TestDatabase } from "./support/db.ts";
import { closeServer, okServer } from "./support/http.ts";
import { FakeTelegram } from "./support/fake-telegram.ts";
import { MONITOR_DIR, NO_THRESHOLDS, monitorBase, testLogger, waitFor } from "./support/monitor.ts";
import { leftOut, testNeeding } from "./support/needs.ts";
import { TestSshd } from "./support/sshd.ts";

const INTERVAL_MS = 300;
const ADMIN_CODE = "open-sesame-42";
const ANI = 2001;
const BUDI = 2002;

let db: TestDatabase;
let fake: FakeTelegram;
let sshd: TestSshd | undefined;
let app: MonitorApp;
let replica: MonitorApp | undefined;
let web: Server | undefined;
let webPort: number;
let maintPort: number;
const prefix = uniquePrefix("monsil");

const rows = <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> => queryRows<T>(db.url, sql, params);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const webId = () => `http:web@127.0.0.1:${webPort}`;
const maintId = () => `http:maint@127.0.0.1:${maintPort}`;
/** DOWN alerts that name this component, sent to chat. */
const downAlerts = (chat: number, id: string) => fake.texts(chat).filter((t) => t.startsWith("🚨") && t.includes(`🔴 ${id}\n`));

interface Snapshot {
  down: Array<{ component: string; silenced: boolean }>;
  silences: Array<{ component: string; kind: string; until: string | null; by: string; down: string[] }>;
}
async function snapshot(of: MonitorApp = app): Promise<Snapshot> {
  const r = await of.api.app.inject({ method: "GET", url: "/api/dashboard" });
  expect(r.statusCode).toBe(200);
  return r.json() as Snapshot;
}

/** Waits until the component's alerts have stopped: none during `quietMs` (after one interval for any in flight). */
async function expectQuiet(chat: number, id: string, quietMs = 6 * INTERVAL_MS): Promise<void> {
  await sleep(2 * INTERVAL_MS);
  const before = downAlerts(chat, id).length;
  await sleep(quietMs);
  expect(downAlerts(chat, id).length).toBe(before);
}

beforeAll(async () => {
  db = await createTestDatabase("monsil");
  fake = new FakeTelegram();
  await fake.start();
  const [sshPort, a, b] = await freePorts(3);
  webPort = a!;
  // Nothing listens on maintPort: that component is down from the start, inside its window.
  maintPort = b!;
  web = await okServer(webPort);
  // Not a skip: without sshd the SSH test fails naming it (./pesan test --without sshd leaves it out).
  if (!leftOut("sshd")) {
    sshd = await TestSshd.create(sshPort!);
    await sshd.start();
  }
  const now = Date.now();
  const config = parseMonitorConfig({
    ...monitorBase("silence-test", db.url),
    userStats: { enabled: false },
    thresholds: NO_THRESHOLDS,
    targets: [
      // This machine without SSH: its facts are read here (the files, uname's fields).
      { name: "here", local: true, interval: 500, timeout: 3000, facts: { interval: "1s" } },
      ...(sshd
        ? [
            {
              name: "box",
              ...sshd.target(),
              interval: 500,
              timeout: 3000,
              commands: { cpu: "grep '^cpu ' /proc/stat; sleep 0.1; grep '^cpu ' /proc/stat" },
              services: [{ name: "sshd", command: "true" }],
              // The default fact commands (cat /proc/cpuinfo, uname -sr, ...), read often for the test.
              facts: { interval: "1s" },
            },
          ]
        : []),
    ],
    components: [
      { type: "http", name: "web", url: `http://127.0.0.1:${webPort}/`, interval: 100, timeout: 500 },
      { type: "http", name: "maint", url: `http://127.0.0.1:${maintPort}/`, interval: 100, timeout: 500 },
    ],
    maintenance: [{ name: "upgrade", components: ["http:maint*"], from: new Date(now - 60_000).toISOString(), to: new Date(now + 3_600_000).toISOString() }],
    redis: { url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", prefix },
    telegram: { token: fake.token, adminCode: ADMIN_CODE, alertInterval: INTERVAL_MS, pollTimeout: "1s", apiRoot: fake.url },
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger() });
  await app.start();
  for (const [chat, name] of [
    [ANI, "Ani"],
    [BUDI, "Budi"],
  ] as const) {
    await fake.ask(chat, "/start", 2);
    await fake.ask(chat, name);
    await fake.ask(chat, `${name.toLowerCase()}@example.com`);
  }
  expect(await fake.ask(ANI, `/admin ${ADMIN_CODE}`)).toEqual(["You are now an admin: /cpu, /ram, /system, /mute, /unmute and /ack are yours."]);
}, 30_000);

afterAll(async () => {
  if (process.env.SHOW_SENT) for (const m of fake.sent) process.stdout.write(`--- ${m.chatId} +${m.at % 100000}\n${m.text}\n`);
  await replica?.close();
  await app?.close();
  await closeServer(web);
  await fake?.close();
  await sshd?.close();
  await db?.drop();
  await deleteRedisKeys(prefix);
});

test("the bot sets its command menu at start (setMyCommands), after getMe", async () => {
  await waitFor("setMyCommands", () => fake.myCommands.length > 0, 5000);
  const names = fake.myCommands.map((c) => c.command);
  expect(names).toEqual(["start", "help", "status", "admin", "stop", "cpu", "ram", "system", "mute", "unmute", "ack"]);
  expect(fake.myCommands.find((c) => c.command === "ack")!.description).toBe("<component>: no alerts about it until it recovers");
  const methods = fake.calls.map((c) => c.method);
  expect(methods.indexOf("getMe")).toBeLessThan(methods.indexOf("setMyCommands"));
  // Once, not on every poll.
  expect(methods.filter((m) => m === "setMyCommands")).toHaveLength(1);
});

const sshTest = testNeeding("sshd");
sshTest("/cpu and /system: processor, load, OS, kernel and uptime read over real SSH", async () => {
  await waitFor("facts and samples of box", () => {
    const h = app.monitor.host("box");
    return app.monitor.hostFacts("box")?.kernel !== undefined && h?.metrics.cpu?.value != null && h.metrics.hdd?.value != null;
  });
  // The sshd runs on this machine, so its facts are this machine's, read here another way.
  const cores = cpus().length;
  const model = cpus()[0]!.model.replace(/\s+/g, " ").trim();
  const os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))![1]!;
  const [cpu] = await fake.ask(ANI, "/cpu box");
  expect(cpu).toContain(`box\nCPU: `);
  expect(cpu).toMatch(/\nCPU: \d+\.\d% [▓░]{10}\n/);
  expect(cpu).toContain(`\nModel: ${model}\nCores: ${cores}\n`);
  expect(cpu).toMatch(/\nLoad: \d+\.\d\d \d+\.\d\d \d+\.\d\d \(1, 5, 15 min\)\n/);
  const [system] = await fake.ask(ANI, "/system box");
  expect(system).toMatch(/^🖥 System · .*\n\nbox 🟢 reachable\nCPU: .*\nRAM: .*\nDisk: .*\nmeasured /);
  expect(system).toContain(`\nOS: ${os}\nKernel: ${type()} ${release()}\nUptime: `);
  expect(system).toContain(`\nProcessor: ${model} (${cores} ${cores === 1 ? "core" : "cores"})\n`);
  expect(system).toContain("Services:\n🟢 sshd On");
  // The uptime shown is the machine's, as precise as its two units (3d 4h, 5h 12m, 13m 35s).
  const shown = /\nUptime: (.*)\n/.exec(system!)![1]!;
  const units: Record<string, number> = { d: 86_400, h: 3600, m: 60, s: 1 };
  const parts = [...shown.matchAll(/(\d+)([dhms])/g)];
  expect(parts.length).toBeGreaterThan(0);
  const shownSeconds = parts.reduce((sum, [, n, u]) => sum + Number(n) * units[u!]!, 0);
  const precision = units[parts.at(-1)![2]!]!;
  expect(Math.abs(uptime() - shownSeconds)).toBeLessThanOrEqual(precision + 5);
});

test("/cpu and /system of a local target: this machine's processor, kernel, OS and uptime, without SSH", async () => {
  await waitFor("facts and samples of here", () => {
    const h = app.monitor.host("here");
    return app.monitor.hostFacts("here")?.kernel !== undefined && h?.metrics.cpu?.value != null && h.metrics.hdd?.value != null;
  });
  // What a user would compare with on the machine itself: uname -sr and /proc/cpuinfo.
  const kernel = execFileSync("uname", ["-sr"], { encoding: "utf8" }).trim();
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)![1]!.replace(/\s+/g, " ").trim();
  const cores = cpuinfo.match(/^processor\s*:\s*\d+$/gm)!.length;
  const os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))![1]!;
  const [cpu] = await fake.ask(ANI, "/cpu here");
  expect(cpu).toMatch(/\n\nhere\nCPU: \d+\.\d% [▓░]{10}\n/);
  expect(cpu).toContain(`\nModel: ${model}\nCores: ${cores}\n`);
  expect(cpu).toMatch(/\nLoad: \d+\.\d\d \d+\.\d\d \d+\.\d\d \(1, 5, 15 min\)\n/);
  const [system] = await fake.ask(ANI, "/system here");
  expect(system).toMatch(/^🖥 System · .*\n\nhere 🟢 reachable\nCPU: .*\nRAM: .*\nDisk: .*\nmeasured /);
  expect(system).toContain(`\nOS: ${os}\nKernel: ${kernel}\nUptime: `);
  expect(system).toContain(`\nProcessor: ${model} (${cores} ${cores === 1 ? "core" : "cores"})\n`);
  expect(system).not.toContain("n/a");
  // /system without a server answers for every target, the local one included.
  expect((await fake.ask(ANI, "/system"))[0]).toContain(`\n\nhere 🟢 reachable\n`);
});

test("a maintenance window holds the alerts of what it names from the start; the dashboard shows it", async () => {
  await waitFor("maint down", () => app.monitor.down().some((d) => d.component === maintId()), 5000);
  await expectQuiet(ANI, maintId(), 3 * INTERVAL_MS);
  expect(downAlerts(ANI, maintId())).toEqual([]);
  expect(downAlerts(BUDI, maintId())).toEqual([]);
  const s = await snapshot();
  expect(s.down.find((d) => d.component === maintId())).toEqual(expect.objectContaining({ silenced: true }));
  expect(s.silences).toEqual([{ component: "http:maint*", kind: "maintenance", until: expect.any(String), by: "maintenance upgrade", down: [maintId()] }]);
  expect((await fake.ask(ANI, "/status"))[0]).toContain("🛠 http:maint*\nmaintenance upgrade until ");
});

test("bad or unauthorised silences are refused and change nothing", async () => {
  expect((await fake.ask(BUDI, `/mute ${webId()} 10m`))[0]).toMatch(/^Sorry, \/mute is for admins only/);
  expect((await fake.ask(BUDI, `/ack ${webId()}`))[0]).toMatch(/^Sorry, \/ack is for admins only/);
  expect(await fake.ask(ANI, "/mute http:wbe 10m")).toEqual(["No component is named http:wbe. Send /status for the component ids (a * matches anything)."]);
  expect(await fake.ask(ANI, `/mute ${webId()} 10`)).toEqual(['"10" is not a duration: give a number and a unit, e.g. 30m, 2h or 1d.']);
  expect(await fake.ask(ANI, `/ack ${webId()}`)).toEqual([`${webId()} is not down: nothing to acknowledge. (/mute silences something ahead of time.)`]);
  expect(await fake.ask(ANI, `/unmute ${webId()}`)).toEqual([`${webId()} is not muted or acknowledged (send /status for what is silenced). A maintenance window ends only by the config.`]);
  expect(await rows("SELECT * FROM monitor_silences")).toEqual([]);
});

test("/mute stops the alerts of a down component; /unmute brings them back; a second replica sees the mute", async () => {
  await closeServer(web);
  web = undefined;
  await waitFor("alerts about web", () => downAlerts(ANI, webId()).length >= 2 && downAlerts(BUDI, webId()).length >= 2, 5000);

  const [reply] = await fake.ask(ANI, `/mute ${webId()} 10m`);
  expect(reply).toMatch(new RegExp(`^🔕 ${webId().replace(/\./g, "\\.")} muted for 10m, until \\d\\d:\\d\\d:\\d\\d UTC, by Ani\\. /unmute `));
  expect(await rows("SELECT component, kind, by_chat, by_name, until > now() + interval '9 minutes' AS later FROM monitor_silences")).toEqual([
    { component: webId(), kind: "mute", by_chat: String(ANI), by_name: "Ani", later: true },
  ]);
  await expectQuiet(ANI, webId());
  await expectQuiet(BUDI, webId(), INTERVAL_MS);

  const s = await snapshot();
  expect(s.down.find((d) => d.component === webId())).toEqual(expect.objectContaining({ silenced: true }));
  expect(s.silences).toContainEqual({ component: webId(), kind: "mute", until: expect.stringMatching(/Z$/), by: "Ani", down: [webId()] });
  expect((await fake.ask(BUDI, "/status"))[0]).toContain(`🔕 ${webId()}\nmuted until `);

  // Another replica (no bot of its own) reads the same silences from Postgres.
  const other = parseMonitorConfig({ instance: "silence-replica", http: { port: 0 }, database: { url: db.url }, userStats: { enabled: false } });
  replica = createMonitorApp(other, { packageDir: MONITOR_DIR, logger: testLogger() });
  await replica.start();
  expect((await snapshot(replica)).silences).toContainEqual(expect.objectContaining({ component: webId(), kind: "mute", by: "Ani" }));

  const count = downAlerts(ANI, webId()).length;
  expect((await fake.ask(ANI, `/unmute ${webId()}`))[0]).toBe(`🔔 ${webId()}: mute ended by Ani. Alerts about it resume; it is still DOWN.`);
  await waitFor("alerts again", () => downAlerts(ANI, webId()).length >= count + 2 && downAlerts(BUDI, webId()).length > 0, 5000);
  expect(await rows("SELECT * FROM monitor_silences")).toEqual([]);
  expect((await snapshot()).down.find((d) => d.component === webId())).toEqual(expect.objectContaining({ silenced: false }));
});

test("/ack holds the alerts until the component recovers; the recovery is told and clears the ack", async () => {
  expect((await fake.ask(ANI, `/ack ${webId()}`))[0]).toBe(`👍 Acknowledged by Ani: ${webId()}. No more alerts about it until it recovers; the recovery is announced.`);
  expect(await rows("SELECT component, kind, until, by_name FROM monitor_silences")).toEqual([{ component: webId(), kind: "ack", until: null, by_name: "Ani" }]);
  await expectQuiet(ANI, webId());
  expect((await snapshot()).silences).toContainEqual({ component: webId(), kind: "ack", until: null, by: "Ani", down: [webId()] });

  const backUps = () => fake.texts(BUDI).filter((t) => t.startsWith("✅ BACK UP") && t.includes(webId()));
  const before = backUps().length;
  web = await okServer(webPort);
  await waitFor("BACK UP", () => backUps().length === before + 1, 5000);
  await waitFor("ack cleared", async () => (await rows("SELECT * FROM monitor_silences")).length === 0, 5000);

  // Down again: nothing holds it now, so the alerts start at once.
  const count = downAlerts(ANI, webId()).length;
  await closeServer(web);
  web = undefined;
  await waitFor("alerts after the ack ended", () => downAlerts(ANI, webId()).length > count, 5000);
  web = await okServer(webPort);
  await waitFor("up again", () => !app.monitor.down().some((d) => d.component === webId()), 5000);
});
