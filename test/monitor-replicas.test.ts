/**
 * Two monitor-bot replicas as real processes (what Compose runs), sharing Postgres, Redis and
 * the fake Telegram: each alert is sent once, not once per replica, only one of them polls
 * Telegram, and when the leader is killed (SIGKILL: no clean hand-over) the other sends the
 * next alerts within about one interval and takes over the polling.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, REPO_ROOT } from "@pesan/cluster";
import { createTestDatabase, deleteRedisKeys, uniquePrefix, type TestDatabase } from "./support/db.ts";
import { FakeTelegram, type SentMessage } from "./support/fake-telegram.ts";
import { MONITOR_MAIN, waitFor } from "./support/monitor.ts";

const INTERVAL_MS = 300;
const ANI = 2001;
const BUDI = 2002;
const dir = mkdtempSync(join(tmpdir(), "pesan-monitor-replicas-"));
const prefix = uniquePrefix("monrep");

interface Replica {
  name: string;
  port: number;
  proc: ChildProcess;
  output: string;
}

let db: TestDatabase;
let fake: FakeTelegram;
let configFile: string;
const replicas: Replica[] = [];

function startReplica(name: string, port: number): Replica {
  const proc = spawn(process.execPath, [MONITOR_MAIN, "--config", configFile], {
    cwd: REPO_ROOT,
    env: { ...process.env, REPLICA: name, MON_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const r: Replica = { name, port, proc, output: "" };
  proc.stdout!.on("data", (d: Buffer) => (r.output += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (r.output += d.toString()));
  replicas.push(r);
  return r;
}

async function health(r: Replica): Promise<{ telegram?: { leader: boolean } } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${r.port}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as { telegram?: { leader: boolean } }) : undefined;
  } catch {
    return undefined;
  }
}

const downAlerts = (from = 0): SentMessage[] => fake.sent.filter((m) => m.chatId === ANI && m.text.startsWith("🚨") && m.at >= from);

beforeAll(async () => {
  db = await createTestDatabase("monrep");
  fake = new FakeTelegram();
  await fake.start();
  const [closed] = await freePorts(1);
  configFile = join(dir, "monitor.yaml");
  writeFileSync(
    configFile,
    [
      "instance: ${ENV:REPLICA}",
      'http: { host: 127.0.0.1, port: "${ENV:MON_PORT}" }',
      "log: { level: warn }",
      `database: { url: "${db.url}" }`,
      "userStats: { enabled: false }",
      "history: { flushEvery: 200 }",
      "components:",
      // Nothing listens there: down from the first check, for the whole test.
      `  - { type: http, name: web, url: "http://127.0.0.1:${closed}/", interval: 100, timeout: 500 }`,
      `redis: { url: "${process.env.REDIS_URL ?? "redis://127.0.0.1:6379"}", prefix: "${prefix}" }`,
      "telegram:",
      `  token: "${fake.token}"`,
      "  adminCode: replica-admin-code",
      `  alertInterval: ${INTERVAL_MS}`,
      "  pollTimeout: 1s",
      `  apiRoot: ${fake.url}`,
      "",
    ].join("\n"),
  );
  const [pa, pb] = await freePorts(2);
  const a = startReplica("replica-a", pa!);
  await waitFor("replica-a up", () => health(a), 20_000, 100);
  const b = startReplica("replica-b", pb!);
  await waitFor("replica-b up", () => health(b), 20_000, 100);
}, 60_000);

afterAll(async () => {
  for (const r of replicas) {
    if (r.proc.exitCode === null && r.proc.signalCode === null) {
      const exited = new Promise((res) => r.proc.once("exit", res));
      r.proc.kill("SIGTERM");
      await exited;
    }
  }
  await fake?.close();
  await db?.drop();
  await deleteRedisKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls !== state.numPassingAsserts) for (const r of replicas) process.stderr.write(`--- ${r.name}\n${r.output.slice(-4000)}\n`);
});

test("exactly one replica leads", async () => {
  const leaders = await waitFor(
    "one leader",
    async () => {
      const hs = await Promise.all(replicas.map(health));
      const n = hs.filter((h) => h?.telegram?.leader).length;
      return n === 1 ? hs : undefined;
    },
    5000,
    50,
  );
  expect(leaders.map((h) => h?.telegram?.leader).sort()).toEqual([false, true]);
});

test("two replicas: a member registers through the polling leader; each alert arrives once per interval", async () => {
  await fake.ask(ANI, "/start", 2);
  await fake.ask(ANI, "Ani");
  expect((await fake.ask(ANI, "ani@example.com"))[0]).toMatch(/^You are registered/);
  await waitFor("alerts flowing", () => downAlerts().length >= 2, 5000);
  const from = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  const seen = downAlerts(from);
  // Once per replica would be ~13 in 2 s, in pairs; once per interval is ~6-7.
  expect(seen.length).toBeGreaterThanOrEqual(5);
  expect(seen.length).toBeLessThanOrEqual(8);
  for (let i = 1; i < seen.length; i++) expect(seen[i]!.at - seen[i - 1]!.at).toBeGreaterThanOrEqual(INTERVAL_MS * 0.8);
  expect(fake.conflicts).toBe(0);
});

test("the leader is killed: the other sends the next alert within about one interval and polls", async () => {
  const hs = await Promise.all(replicas.map(health));
  const leader = replicas[hs.findIndex((h) => h?.telegram?.leader)]!;
  const other = replicas.find((r) => r !== leader)!;
  const exited = new Promise((res) => leader.proc.once("exit", res));
  leader.proc.kill("SIGKILL");
  await exited;
  const killedAt = Date.now();
  const before = downAlerts().filter((m) => m.at <= killedAt).at(-1)!;
  const next = await waitFor("an alert after the kill", () => downAlerts(killedAt)[0], 5000);
  // The dead leader's last alert, then the lease runs out (3/4 interval) and the next is due.
  expect(next.at - before.at).toBeLessThanOrEqual(INTERVAL_MS * 2.5);
  expect(next.at - killedAt).toBeLessThanOrEqual(INTERVAL_MS * 2);
  await waitFor("the survivor leads", async () => (await health(other))?.telegram?.leader === true, 3000);

  await new Promise((r) => setTimeout(r, 1500));
  const after = downAlerts(next.at);
  for (let i = 1; i < after.length; i++) expect(after[i]!.at - after[i - 1]!.at).toBeGreaterThanOrEqual(INTERVAL_MS * 0.8);
  expect(after.length).toBeGreaterThanOrEqual(4);

  // Updates now reach the survivor's polling.
  expect((await fake.ask(BUDI, "/status"))[0]).toMatch(/^Sorry, this bot only answers registered members/);
  expect((await fake.ask(ANI, "/status"))[0]).toMatch(/^📋 Status .*\n1 DOWN of 1/);
});
