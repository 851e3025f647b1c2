/**
 * An ioredis client for a REDIS_URL of any form (see config/redis-url.ts): one server, the
 * primary that Redis Sentinel names, or a Redis Cluster. Every connection the bus opens goes
 * through here, and duplicate() copies these options, so the consumers' blocking connections
 * find the new primary (or master) after a failover as the shared one does.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import { parseRedisUrl, type RedisTarget } from "../config/redis-url.ts";
import { backoffDelay } from "../retry/backoff.ts";

/** Reconnect delays (ioredis counts attempts from 1): from 50 ms, doubling, at most 1 s apart, with jitter. */
export function redisRetryDelay(times: number, random = Math.random): number {
  return backoffDelay(times - 1, 50, 1000, random);
}

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
  // Without one of the caller's, the jittered delays of every other reconnect here (ioredis's
  // own default would apply to its reconnects, but not to reconnectAfterUnexpectedEnd's).
  const retryStrategy = base.retryStrategy ?? ((n: number) => redisRetryDelay(n));
  return {
    ...base,
    retryStrategy,
    sentinels: t.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: t.name,
    role: "master",
    db: t.db,
    ...(t.username ? { username: t.username } : {}),
    ...(t.password ? { password: t.password } : {}),
    // Subscribes to the sentinels' +switch-master: a connection to a primary that was demoted
    // without dying (a partition healed) moves at once instead of at its next error.
    failoverDetector: true,
    // Leaving a frozen primary: ioredis ends the socket and destroys it only after this if the
    // peer never closes its side (2 s by default, which was 2 s more of the gap: SIGSTOP test).
    disconnectTimeout: 200,
    // All sentinels away: ask again from 50 ms up to 1 s apart, like any other reconnect.
    sentinelRetryStrategy: retryStrategy,
    reconnectOnError: reconnectOnReadonly,
  };
}

/**
 * Redis Cluster: the seed nodes, the node connections with the caller's options. A node that
 * dies is not reconnected to; a command for its slots is retried (every 100 ms, up to 16 times)
 * after asking the cluster again which master serves them, so it goes to the promoted replica
 * once the cluster has failed over, or fails as "Connection is closed" (transient) meanwhile.
 */
export function clusterOptions(t: Extract<RedisTarget, { kind: "cluster" }>, base: RedisOptions): ClusterOptions {
  const { retryStrategy, lazyConnect, ...node } = base;
  return {
    lazyConnect: lazyConnect ?? false,
    redisOptions: { ...node, ...(t.username ? { username: t.username } : {}), ...(t.password ? { password: t.password } : {}) },
    ...(retryStrategy ? { clusterRetryStrategy: retryStrategy } : {}),
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    // Reads and writes both go to masters: the streams' consumer groups are written by reads.
    scaleReads: "master",
  };
}

export type RedisClient = Redis | Cluster;

/**
 * ioredis ends a Sentinel connection for good (status "end", every later command fails with
 * "Connection is closed.") when its connector is disconnected while it is asking the sentinels
 * for the primary: its connect() then throws, and a throw there is final. The failover detector
 * does exactly that when +switch-master arrives during a reconnect, and so does disconnect(true)
 * during a connect. Seen in test/compose/ha.test.ts: after the Redis primary was killed, a
 * gateway's blocking connection stayed dead and its clients got no replies. So a Sentinel
 * connection that ends without being closed by its owner (disconnect() or quit()) connects
 * again, with the client's own reconnect delays (redisRetryDelay's without a retryStrategy: a
 * fixed delay would bring every process's connections back at the same moment).
 */
export function reconnectAfterUnexpectedEnd(c: Redis): Redis {
  let closing = false;
  let attempts = 0;
  const disconnect = c.disconnect.bind(c);
  c.disconnect = (reconnect = false) => {
    if (!reconnect) closing = true;
    disconnect(reconnect);
  };
  const quit = c.quit.bind(c) as (...a: unknown[]) => Promise<"OK">;
  c.quit = ((...a: unknown[]) => {
    closing = true;
    return quit(...a);
  }) as typeof c.quit;
  c.on("ready", () => (attempts = 0));
  c.on("end", () => {
    if (closing) return;
    attempts++;
    const d = c.options.retryStrategy ? c.options.retryStrategy(attempts) : redisRetryDelay(attempts);
    // A retryStrategy that returns no number asks for no more reconnects, as in ioredis.
    if (typeof d !== "number") return;
    const timer = setTimeout(() => {
      // connect() from "end" starts over: the sentinels are asked again.
      if (!closing && c.status === "end") c.connect().catch(() => undefined);
    }, d);
    // Nothing to wait for when the process is on its way out.
    timer.unref();
  });
  return c;
}

export function createRedisClient(url: string, base: RedisOptions): RedisClient {
  const t = parseRedisUrl(url);
  if (t.kind === "single") return new Redis(t.url, { ...base, reconnectOnError: reconnectOnReadonly });
  if (t.kind === "cluster") return new Cluster(t.nodes, clusterOptions(t, base));
  return reconnectAfterUnexpectedEnd(new Redis(sentinelOptions(t, base)));
}

export function isCluster(c: RedisClient): c is Cluster {
  return c instanceof Cluster;
}

/** A second client with the same options (a consumer's blocking reads): the same primary or cluster, followed the same way. */
export function duplicateClient(c: RedisClient): RedisClient {
  if (isCluster(c)) return c.duplicate();
  const d = c.duplicate();
  return c.options.sentinels?.length ? reconnectAfterUnexpectedEnd(d) : d;
}
