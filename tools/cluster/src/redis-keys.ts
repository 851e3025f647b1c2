import type { Redis } from "ioredis";
import { createRedisClient, isCluster } from "@pesan/shared/bus";

/** Every key under a prefix, a SCAN page at a time (not KEYS: Redis stays responsive). */
export async function* scanKeys(r: Redis, prefix: string): AsyncGenerator<string[]> {
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== "0");
}

/**
 * Deletes every Redis key under a prefix a tool created for itself. Any REDIS_URL form
 * (docs/redis-ha.md): on Redis Cluster each master is scanned, and keys are deleted one by one
 * (one DEL may not span slots).
 */
export async function dropKeys(redisUrl: string, prefix: string): Promise<number> {
  const r = createRedisClient(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  let dropped = 0;
  try {
    await r.connect();
    const nodes = isCluster(r) ? r.nodes("master") : [r];
    for (const node of nodes) {
      for await (const keys of scanKeys(node, prefix)) {
        if (isCluster(r)) for (const k of keys) dropped += await r.del(k);
        else dropped += await r.del(...keys);
      }
    }
  } finally {
    r.disconnect();
  }
  return dropped;
}
