/**
 * BUS_SHARDS agreement, against the real Redis (REDIS_URL or redis://127.0.0.1:6379), each
 * test under its own key prefix, deleted afterwards.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { ConfigError } from "../errors.ts";
import { createLogger } from "../observability/log.ts";
import { RedisBus } from "./redis-bus.ts";
import { SHARDS_KEY, shardsMismatch, shardsPoolWarning } from "./shards.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const logger = createLogger("test", "silent");

test("the first process records its BUS_SHARDS; one with another count refuses to start, naming both", async () => {
  const prefix = `pesan-test:${randomUUID()}:`;
  const buses = [prefix, prefix, prefix, `${prefix}other:`].map((p) => new RedisBus(REDIS_URL, p));
  const raw = new Redis(REDIS_URL);
  try {
    expect(await buses[0]!.checkShards(4, logger)).toBe(true);
    expect(await raw.get(`${prefix}${SHARDS_KEY}`)).toBe("4");
    expect(await buses[1]!.checkShards(4, logger)).toBe(true);
    const e: unknown = await buses[2]!.checkShards(2, logger).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/BUS_SHARDS=2, but the gateways and routers of this bus use BUS_SHARDS=4/);
    // The record is unchanged by the refused one.
    expect(await raw.get(`${prefix}${SHARDS_KEY}`)).toBe("4");
    // Another prefix is another bus.
    expect(await buses[3]!.checkShards(2, logger)).toBe(true);
  } finally {
    await Promise.all(buses.map((b) => b.close()));
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length > 0) await raw.del(...keys);
    raw.disconnect();
  }
});

test("the messages", () => {
  expect(shardsMismatch(3, "3", "k")).toBeUndefined();
  expect(shardsMismatch(3, "1", "pesan:bus-shards")).toMatch(/BUS_SHARDS=3, but .* BUS_SHARDS=1 \(recorded in Redis as pesan:bus-shards\)/);
  expect(shardsPoolWarning(10, 10)).toBeUndefined();
  expect(shardsPoolWarning(12, 10)).toMatch(/BUS_SHARDS=12 is more than DB_POOL_MAX=10/);
});
