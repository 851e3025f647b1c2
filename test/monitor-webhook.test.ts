/**
 * Webhook mode, as behind nginx: Telegram POSTs updates to /telegram/webhook on the monitor's
 * own HTTP server with the X-Telegram-Bot-Api-Secret-Token header. The right secret is handled
 * (answers go out through the Bot API), a wrong or missing one gets 401 and changes nothing, a
 * redelivered update is handled once, and the bot registers its URL with setWebhook and never
 * polls. No Redis here: a single replica runs the bot on its own. Also: with Telegram out of
 * reach, the monitor starts and stops as quickly as without a bot.
 */
import pg from "pg";
import { freePorts } from "@pesan/cluster";
import { createMonitorApp, parseMonitorConfig, type MonitorApp } from "../services/monitor-bot/src/index.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { FakeTelegram } from "./support/fake-telegram.ts";
import { MONITOR_DIR, testLogger, waitFor } from "./support/monitor.ts";

const SECRET = "webhook-secret-0123456789";
const PUBLIC_URL = "https://monitor.example.test/telegram/webhook";
let db: TestDatabase;
let fake: FakeTelegram;
let app: MonitorApp;
let base: string;
let nextUpdate = 5000;

beforeAll(async () => {
  db = await createTestDatabase("monhook");
  fake = new FakeTelegram();
  await fake.start();
  const config = parseMonitorConfig({
    instance: "hook-test",
    http: { port: 0 },
    database: { url: db.url },
    userStats: { enabled: false },
    telegram: { token: fake.token, adminCode: "hook-admin-code", mode: "webhook", apiRoot: fake.url, webhook: { secret: SECRET, url: PUBLIC_URL } },
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger() });
  await app.start();
  base = app.api.address;
}, 30_000);

afterAll(async () => {
  await app?.close();
  await fake?.close();
  await db?.drop();
});

function update(chatId: number, text: string, id = nextUpdate++) {
  return { update_id: id, message: { message_id: id, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: "private" }, from: { id: chatId, is_bot: false, first_name: "T" }, text } };
}

async function post(body: unknown, secret: string | undefined): Promise<number> {
  const res = await fetch(`${base}/telegram/webhook`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(secret === undefined ? {} : { "x-telegram-bot-api-secret-token": secret }) },
    body: JSON.stringify(body),
  });
  await res.text();
  return res.status;
}

async function members(chatId: number): Promise<number> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query<{ n: number }>("SELECT count(*)::int AS n FROM monitor_members WHERE chat_id = $1", [chatId])).rows[0]!.n;
  } finally {
    await c.end();
  }
}

test("the webhook is registered with its secret at start, and nothing polls", async () => {
  await waitFor("setWebhook", () => fake.webhook, 5000);
  expect(fake.webhook).toEqual({ url: PUBLIC_URL, secret: SECRET });
  expect(fake.calls.filter((c) => c.method === "getUpdates")).toEqual([]);
  expect(fake.calls.find((c) => c.method === "setWebhook")!.params.allowed_updates).toBe('["message"]');
  // The command menu too, after the webhook (which matters more).
  await waitFor("setMyCommands", () => fake.myCommands.length > 0, 5000);
  const methods = fake.calls.map((c) => c.method);
  expect(methods.indexOf("setWebhook")).toBeLessThan(methods.indexOf("setMyCommands"));
  expect(fake.myCommands.map((c) => c.command)).toContain("mute");
});

test("a POST with the right secret is handled: the member is created and answered", async () => {
  expect(await post(update(3001, "/start"), SECRET)).toBe(200);
  await waitFor("two replies", () => fake.texts(3001).length >= 2, 5000);
  expect(fake.texts(3001)[1]).toBe("What is your name?");
  expect(await members(3001)).toBe(1);
  expect(await post(update(3001, "Sari"), SECRET)).toBe(200);
  await waitFor("asked for the email", () => fake.texts(3001).includes("Thanks, Sari. What is your email address?"), 5000);
});

test.each([
  ["a wrong secret", "not-the-secret-at-all"],
  ["no secret", undefined],
])("%s: 401, and nothing happens", async (_name, secret) => {
  const sentBefore = fake.sent.length;
  expect(await post(update(3002, "/start"), secret)).toBe(401);
  await new Promise((r) => setTimeout(r, 300));
  expect(fake.sent.length).toBe(sentBefore);
  expect(await members(3002)).toBe(0);
});

test("a redelivered update (same update_id) is handled once", async () => {
  const u = update(3003, "/start");
  expect(await post(u, SECRET)).toBe(200);
  expect(await post(u, SECRET)).toBe(200);
  await waitFor("replies", () => fake.texts(3003).length >= 2, 5000);
  await new Promise((r) => setTimeout(r, 300));
  expect(fake.texts(3003)).toHaveLength(2);
});

test("a body that is not an update is refused (400); unauthenticated garbage gets 401 before it is read", async () => {
  const res = await fetch(`${base}/telegram/webhook`, { method: "POST", headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET }, body: "{not json" });
  expect(res.status).toBe(400);
  const stranger = await fetch(`${base}/telegram/webhook`, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
  expect(stranger.status).toBe(401);
});

test("Telegram out of reach (an offline machine): the monitor still starts, serves and stops at once", async () => {
  const [closed] = await freePorts(1);
  const offline = createMonitorApp(
    parseMonitorConfig({
      instance: "offline-test",
      http: { port: 0 },
      database: { url: db.url },
      userStats: { enabled: false },
      telegram: { token: fake.token, adminCode: "hook-admin-code", apiRoot: `http://127.0.0.1:${closed}`, pollTimeout: "1s" },
    }),
    { packageDir: MONITOR_DIR, logger: testLogger() },
  );
  let t = Date.now();
  await offline.start();
  try {
    expect(Date.now() - t).toBeLessThan(3000);
    expect((await offline.api.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    t = Date.now();
    await offline.close();
    expect(Date.now() - t).toBeLessThan(3000);
  }
});
