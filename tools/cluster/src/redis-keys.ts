/** Deletes every Redis key under a prefix a tool created for itself (SCAN, not KEYS: Redis stays responsive). */
export async function dropKeys(redisUrl: string, prefix: string): Promise<number> {
  const { Redis } = await import("ioredis");
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  let dropped = 0;
  try {
    await r.connect();
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) dropped += await r.del(...keys);
    } while (cursor !== "0");
  } finally {
    r.disconnect();
  }
  return dropped;
}
