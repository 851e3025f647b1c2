/**
 * An ioredis client for a REDIS_URL of any form (see config/redis-url.ts): one server, or the
 * primary that Redis Sentinel names. Every connection the bus opens goes through here, and
 * duplicate() copies these options, so the consumers' blocking connections find the new primary
 * after a failover as the shared one does.
 */
import { Redis, type RedisOptions } from "ioredis";
import { parseRedisUrl, type RedisTarget } from "../config/redis-url.ts";

/**
 * After a failover the old primary, if it is still up (or back), is a replica that answers
 * writes with READONLY; a connection still open to it reconnects, which asks the sentinels
 * again. The command that got READONLY fails (it was not executed): the caller's retry path
 * (ERR UNAVAILABLE to the client, the router's batch retry) takes it from there.
 */
export function reconnectOnReadonly(err: Error): 1 | false {
  return err.message.startsWith("READONLY") ? 1 : false;
}

/** The ioredis options for a parsed target, on top of the caller's; the URL of a single server is separate. */
export function sentinelOptions(t: Extract<RedisTarget, { kind: "sentinel" }>, base: RedisOptions): RedisOptions {
  return {
    ...base,
    sentinels: t.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: t.name,
    role: "master",
    db: t.db,
    ...(t.username ? { username: t.username } : {}),
    ...(t.password ? { password: t.password } : {}),
    // Subscribes to the sentinels' +switch-master: a connection to a primary that was demoted
    // without dying (a partition healed) moves at once instead of at its next error.
    failoverDetector: true,
    // All sentinels away: ask again from 50 ms up to 1 s apart, like any other reconnect.
    ...(base.retryStrategy ? { sentinelRetryStrategy: base.retryStrategy } : {}),
    reconnectOnError: reconnectOnReadonly,
  };
}

export function createRedisClient(url: string, base: RedisOptions): Redis {
  const t = parseRedisUrl(url);
  if (t.kind === "single") return new Redis(t.url, { ...base, reconnectOnError: reconnectOnReadonly });
  return new Redis(sentinelOptions(t, base));
}
