import type { Redis } from "ioredis";

/** Every key under a prefix, a SCAN page at a time (not KEYS: Redis stays responsive). */
export async function* scanKeys(r: Redis, prefix: string): AsyncGenerator<string[]> {
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== "0");
}

/** Deletes every Redis key under a prefix a tool created for itself. */
export async function dropKeys(redisUrl: string, prefix: string): Promise<number> {
  const { Redis } = await import("ioredis");
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  let dropped = 0;
  try {
    await r.connect();
    for await (const keys of scanKeys(r, prefix)) dropped += await r.del(...keys);
  } finally {
    r.disconnect();
  }
  return dropped;
}
