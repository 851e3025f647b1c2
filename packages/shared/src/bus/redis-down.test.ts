/**
 * RedisBus while Redis is away (a port nothing listens on): publish fails at once with
 * BusUnavailableError instead of queueing in ioredis, so a gateway under load cannot grow its
 * memory for as long as the outage lasts; the health check says so.
 */
import { createServer } from "node:net";
import { isTransientBusError, BusUnavailableError } from "./bus.ts";
import { reconnectOnReadonly } from "./redis-client.ts";
import { RedisBus, redisRetryDelay } from "./redis-bus.ts";

/** A loopback port that refuses connections: a listener we own, closed again. */
async function refusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("with Redis away, 10,000 publishes fail at once and nothing waits in ioredis's queue", async () => {
  const bus = new RedisBus(`redis://127.0.0.1:${await refusedPort()}`, "down:");
  try {
    await until(() => bus.redis.status === "reconnecting", 5000);
    const t0 = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 10_000 }, (_, i) => bus.publish([{ stream: bus.key("in"), payload: `p${i}` }])));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(0);
    const reasons = results.map((r) => (r as PromiseRejectedResult).reason as unknown);
    expect(reasons.every((e) => e instanceof BusUnavailableError && isTransientBusError(e))).toBe(true);
    expect(String((reasons[0] as Error).message)).toMatch(/^bus unavailable: redis reconnecting$/);
    // ioredis's own offline queue stayed empty (it is not in the typings).
    expect((bus.redis as unknown as { offlineQueue: { length: number } }).offlineQueue.length).toBe(0);
    await expect(bus.ping()).rejects.toThrow(/redis reconnecting/);
  } finally {
    await bus.close();
  }
});

test("reconnect delays: from about 50 ms, doubling, never more than 1 s, with jitter", () => {
  expect([1, 2, 3, 4, 5, 6, 50].map((n) => redisRetryDelay(n, () => 0.999999))).toEqual([50, 100, 200, 400, 800, 1000, 1000]);
  expect([1, 2, 3, 4, 5, 6, 50].map((n) => redisRetryDelay(n, () => 0))).toEqual([25, 50, 100, 200, 400, 500, 500]);
});

test("what counts as Redis being away", () => {
  const failover = [
    // A demoted primary (Sentinel failover), and one that lost its replicas (min-replicas-to-write).
    "READONLY You can't write against a read only replica.",
    "NOREPLICAS Not enough good replicas to write.",
    // The sentinels named no primary yet (failover in progress, or none reachable).
    "All sentinels are unreachable. Retrying from scratch after 1000ms.",
    // Redis Cluster while a master fails over: what a pipeline hands back raw once ioredis's
    // redirections are used up, and what a single command fails with then.
    "CLUSTERDOWN The cluster is down",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "MOVED 3999 127.0.0.1:6381",
    "ASK 3999 127.0.0.1:6381",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN The cluster is down",
  ];
  for (const m of ["Connection is closed.", "connect ECONNREFUSED 127.0.0.1:6379", "LOADING Redis is loading the dataset in memory", "read ECONNRESET", ...failover]) {
    expect([m, isTransientBusError(new Error(m))]).toEqual([m, true]);
  }
  expect(isTransientBusError(new Error("ERR syntax error"))).toBe(false);
  expect(isTransientBusError(new Error("NOGROUP No such key"))).toBe(false);
  // The cluster replies count only as Redis's reply prefix, not as words inside another error.
  expect(isTransientBusError(new Error("ERR unknown command 'ASKING', with args"))).toBe(false);
  expect(isTransientBusError(new Error("WRONGTYPE Operation against a key holding the wrong kind of value (MOVED)"))).toBe(false);
});

test("a connection on a demoted primary reconnects (and asks the sentinels again) on READONLY only", () => {
  expect(reconnectOnReadonly(new Error("READONLY You can't write against a read only replica."))).toBe(1);
  expect(reconnectOnReadonly(new Error("NOREPLICAS Not enough good replicas to write."))).toBe(false);
  expect(reconnectOnReadonly(new Error("ERR syntax error"))).toBe(false);
});

test("a process starting while Redis is down is not held up by the BUS_SHARDS check (it finishes when Redis answers)", async () => {
  const bus = new RedisBus(`redis://127.0.0.1:${await refusedPort()}`, "down:");
  const warnings: string[] = [];
  const logger = { warn: (_o: unknown, m: string) => void warnings.push(m), error: () => undefined } as unknown as Parameters<RedisBus["checkShards"]>[1];
  try {
    const started = Date.now();
    expect(await bus.checkShards(2, logger, 200)).toBe(false);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(warnings).toEqual([expect.stringMatching(/BUS_SHARDS not checked/)]);
  } finally {
    await bus.close();
  }
});
