import { ConfigError } from "@pesan/shared/errors";
import { parseMonitorConfig, type Env } from "./config.ts";

const TOKEN = "123456:AAH-telegram-test-token_0123456789";
const base = (telegram?: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ database: { url: "postgres://u@127.0.0.1/db" }, ...(telegram ? { telegram } : {}), ...extra });

function issues(tree: unknown, env: Env = {}): string[] {
  try {
    parseMonitorConfig(tree, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  throw new Error("the config was accepted");
}

test("no telegram section, no bot", () => {
  const c = parseMonitorConfig(base(), {});
  expect(c.telegram).toBeUndefined();
  expect(c.redis).toBeUndefined();
});

test("the defaults: polling, 10 s alerts, lease 3/4 of the interval, token from the environment", () => {
  const c = parseMonitorConfig(base({ token: "${ENV:TELEGRAM_BOT_TOKEN}", adminCode: "${ENV:ADMIN_CODE}" }, { redis: { url: "${ENV:REDIS_URL}" } }), {
    TELEGRAM_BOT_TOKEN: TOKEN,
    ADMIN_CODE: "let-me-in-please",
    REDIS_URL: "redis://127.0.0.1:6379",
  });
  expect(c.telegram).toEqual({
    token: TOKEN,
    adminCode: "let-me-in-please",
    alertIntervalMs: 10_000,
    mode: "polling",
    pollTimeoutSeconds: 30,
    webhook: undefined,
    apiRoot: undefined,
    sendRate: 25,
    leaseTtlMs: 7500,
  });
  expect(c.redis).toEqual({ url: "redis://127.0.0.1:6379", prefix: "pesan:monitor:" });
});

test("webhook mode with its secret, path and public url; a short alert interval", () => {
  const c = parseMonitorConfig(
    base({
      token: TOKEN,
      adminCode: "let-me-in-please",
      mode: "webhook",
      alertInterval: "300ms",
      apiRoot: "http://127.0.0.1:8081",
      webhook: { secret: "0123456789abcdef-_XYZ", url: "https://monitor.example.com/telegram/webhook" },
    }),
    {},
  );
  expect(c.telegram).toMatchObject({
    mode: "webhook",
    alertIntervalMs: 300,
    leaseTtlMs: 225,
    apiRoot: "http://127.0.0.1:8081",
    webhook: { path: "/telegram/webhook", secret: "0123456789abcdef-_XYZ", url: "https://monitor.example.com/telegram/webhook" },
  });
});

test.each<[string, Record<string, unknown>, RegExp]>([
  ["missing token", { adminCode: "let-me-in-please" }, /^telegram\.token: required/],
  ["malformed token", { token: "not-a-token", adminCode: "let-me-in-please" }, /^telegram\.token: must be a bot token as BotFather gives it/],
  ["short admin code", { token: TOKEN, adminCode: "1234" }, /^telegram\.adminCode: must be at least 8 characters/],
  ["unknown mode", { token: TOKEN, adminCode: "let-me-in-please", mode: "push" }, /^telegram\.mode: expected "polling" or "webhook"/],
  ["webhook without its secret", { token: TOKEN, adminCode: "let-me-in-please", mode: "webhook" }, /^telegram\.webhook: mode webhook needs webhook: \{ secret \}/],
  ["webhook secret of the wrong alphabet", { token: TOKEN, adminCode: "let-me-in-please", mode: "webhook", webhook: { secret: "has spaces in it!!!!" } }, /^telegram\.webhook\.secret: must be 16-256 of/],
  ["alert interval too short", { token: TOKEN, adminCode: "let-me-in-please", alertInterval: "10ms" }, /^telegram\.alertInterval: must be between 100 ms/],
  ["misspelt key", { token: TOKEN, adminCode: "let-me-in-please", alertIntervall: "10s" }, /^telegram: Unrecognized key: "alertIntervall"/],
])("%s", (_name, telegram, expected) => {
  expect(issues(base(telegram))).toEqual(expect.arrayContaining([expect.stringMatching(expected)]));
});

test("secrets are never echoed back", () => {
  const out = issues(base({ token: "123:short", adminCode: "abc" }));
  expect(out.join("\n")).not.toContain("123:short");
  expect(out.join("\n")).not.toContain('"abc"');
});

test("redis: the URL scheme is checked", () => {
  expect(issues(base(undefined, { redis: { url: "http://x" } }))).toEqual(['redis.url: must be a redis:// or rediss:// URL (got "http://x")']);
});
