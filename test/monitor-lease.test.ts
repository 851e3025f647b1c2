/**
 * The alert lease and the shared bot state against a real Redis: one holder at a time, a clean
 * hand-over on close, expiry when the holder stops renewing, "degraded" alerting when Redis
 * cannot be reached at all; update ids seen once, the offset only moving forward, alert
 * records surviving a change of leader.
 */
import { Redis } from "ioredis";
import { RedisLease } from "../services/monitor-bot/src/alerting/lease.ts";
import { RedisBotState } from "../services/monitor-bot/src/alerting/shared-state.ts";
import { deleteRedisKeys, uniquePrefix } from "./support/db.ts";
import { testLogger, waitFor } from "./support/monitor.ts";

const URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const TTL = 300;
const prefix = uniquePrefix("monlease");
const clients: Redis[] = [];
const leases: RedisLease[] = [];

function client(): Redis {
  const r = new Redis(URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1000, retryStrategy: () => 200 });
  r.on("error", () => undefined);
  clients.push(r);
  return r;
}

function lease(name: string, redis: Redis): RedisLease {
  const l = new RedisLease({ redis, logger: testLogger() }, { key: `${prefix}leader`, ttlMs: TTL, instance: name });
  leases.push(l);
  return l;
}

const failing = async () => {
  throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
};
/** A real client that can be made to fail every command, as while Redis is away or the process hangs. */
function cuttable(real: Redis): { redis: Redis; cut(): void } {
  let cut = false;
  const redis = {
    eval: (...a: Parameters<Redis["eval"]>) => (cut ? failing() : real.eval(...a)),
    set: (...a: unknown[]) => (cut ? failing() : (real.set as (...x: unknown[]) => Promise<unknown>)(...a)),
  };
  return { redis: redis as unknown as Redis, cut: () => (cut = true) };
}
let cutB: () => void;

afterAll(async () => {
  for (const l of leases) await l.close();
  for (const c of clients) c.disconnect();
  await deleteRedisKeys(prefix);
});

test("one holder; a clean close hands over at the next attempt", async () => {
  const ra = client();
  const rb = client();
  await Promise.all([ra.connect(), rb.connect()]);
  const a = lease("a", ra);
  const wb = cuttable(rb);
  cutB = wb.cut;
  const b = lease("b", wb.redis);
  let changes = 0;
  b.onChange(() => changes++);
  await a.start();
  await b.start();
  expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
  await new Promise((r) => setTimeout(r, TTL * 2));
  expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
  const t = Date.now();
  await a.close();
  await waitFor("b leads", () => b.isLeader(), 2000, 5);
  expect(Date.now() - t).toBeLessThan(TTL);
  expect(changes).toBe(1);
  expect(await ra.get(`${prefix}leader`)).toBe(b.id);
});

test("a holder that stops renewing loses the key when it expires; it never steals it back", async () => {
  const b = leases[1]!;
  const rc = client();
  await rc.connect();
  const c = lease("c", rc);
  await c.start();
  expect(c.isLeader()).toBe(false);
  // b is cut off from Redis: its renewals fail, and it must step down before c can step up.
  cutB();
  const t = Date.now();
  let both = 0;
  await waitFor("c leads", () => {
    if (b.isLeader() && c.isLeader()) both++;
    return c.isLeader();
  }, 2000, 2);
  expect(Date.now() - t).toBeLessThan(TTL * 2);
  expect(both).toBe(0);
  expect(b.isLeader()).toBe(false);
});

test("Redis unreachable: nobody leads, but after a whole ttl the replica may alert anyway", async () => {
  // Every command fails, as ioredis's do while the server is away. (A real client to a dead
  // port does the same, but then keeps the test process alive for 2 s.)
  const d = lease("d", { eval: failing, set: failing } as unknown as Redis);
  await d.start();
  expect(d.isLeader()).toBe(false);
  expect(d.mayAlert()).toBe(false);
  await waitFor("degraded", () => d.mayAlert(), 3000, 10);
  expect(d.isLeader()).toBe(false);
});

test("shared state: update ids once, offset forward only, alert records round-trip", async () => {
  const r = client();
  await r.connect();
  const a = new RedisBotState(r, prefix);
  const b = new RedisBotState(r, prefix);
  expect(await a.firstSeen(42)).toBe(true);
  expect(await b.firstSeen(42)).toBe(false);
  expect(await a.offset()).toBeUndefined();
  await a.setOffset(50);
  await b.setOffset(45);
  expect(await b.offset()).toBe(50);
  await a.saveAlerts(new Map([["http:web", { since: 1, lastAt: 2, count: 3 }], ["host:x", { since: 5, lastAt: 6, count: 1 }]]), []);
  await a.saveAlerts(new Map([["http:web", { since: 1, lastAt: 12, count: 4 }]]), ["host:x"]);
  expect(await b.loadAlerts()).toEqual(new Map([["http:web", { since: 1, lastAt: 12, count: 4 }]]));
});
