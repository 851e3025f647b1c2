/** The Redis streams backend: XADD / XREADGROUP / XAUTOCLAIM / XACK (+XDEL). */
import type { Logger } from "../observability/log.ts";
import { agreeOnShards, SHARDS_KEY } from "./shards.ts";
import { createRedisClient, duplicateClient, isCluster, redisRetryDelay, type RedisClient } from "./redis-client.ts";
import { BusUnavailableError, ConsumerLoop, type Bus, type BusEntry, type ConsumerOptions, type BatchHandler, type Consumer, type PublishItem, type StreamBackend } from "./bus.ts";

type RawEntries = Array<[string, string[]]>;

function toEntries(raw: RawEntries | null | undefined): BusEntry[] {
  const out: BusEntry[] = [];
  for (const [id, fields] of raw ?? []) {
    // XAUTOCLAIM reports entries deleted meanwhile with null fields; nothing left to do for them.
    if (!fields) continue;
    const i = fields.indexOf("p");
    if (i >= 0 && fields[i + 1] !== undefined) out.push({ id, payload: fields[i + 1]! });
  }
  return out;
}

/**
 * Publishes waiting for Redis's answer at once, at most. Past this (a Redis that accepts but
 * does not answer), publish fails at once too, so the callers' work cannot pile up in memory.
 */
export const MAX_PUBLISHES_IN_FLIGHT = 1000;
/**
 * Payload bytes of the publishes waiting for Redis's answer, at most, by default: the count
 * above alone lets 1,000 entries of up to MAX_PACK datagrams each (megabytes apiece) pile up
 * in memory while Redis accepts but does not answer (stopped, swapping, a cut that TCP has
 * not noticed yet). The gateway sets it from PUBLISH_MAX_BYTES.
 */
export const DEFAULT_MAX_PUBLISH_BYTES = 64 * 1024 * 1024;
/**
 * ioredis's states once a connection was lost (before the first connect it is "wait" or
 * "connecting": a publish then waits for it, counted against MAX_PUBLISHES_IN_FLIGHT).
 */
const LOST = new Set(["reconnecting", "close", "end"]);

export { redisRetryDelay };

export class RedisBus implements Bus {
  readonly kind = "redis";
  readonly redis: RedisClient;
  /** On Redis Cluster: keys carry a hash tag, and a publish is one pipeline per stream. */
  readonly clustered: boolean;
  private readonly prefix: string;
  private closed = false;
  private inFlight = 0;
  private bytesInFlight = 0;
  private readonly maxBytesInFlight: number;

  constructor(url: string, prefix: string, o: { maxBytesInFlight?: number } = {}) {
    this.prefix = prefix;
    this.maxBytesInFlight = o.maxBytesInFlight ?? DEFAULT_MAX_PUBLISH_BYTES;
    // The consumers' few commands (one read, ack or claim at a time each) wait in ioredis's
    // offline queue while Redis is away and go out when it is back. Publishes do not queue:
    // publish() fails at once then (see below), which keeps that queue bounded.
    // `url` is any REDIS_URL form (one server or Sentinel; see config/redis-url.ts).
    this.redis = createRedisClient(url, { maxRetriesPerRequest: null, lazyConnect: false, retryStrategy: (n) => redisRetryDelay(n) });
    this.redis.on("error", () => undefined);
    this.clustered = isCluster(this.redis);
  }

  /**
   * On Redis Cluster the name is a hash tag (`pesan:{in:0}`): a stream and its `:dead` stream
   * share a slot, so one master holds each, and the prefix still leads for SCAN MATCH.
   */
  key(name: string): string {
    return this.clustered ? `${this.prefix}{${name}}` : this.prefix + name;
  }

  /**
   * Fails at once with a BusUnavailableError while the connection is lost (or too many
   * publishes await an answer): queued in ioredis instead, every gateway tick's entry would wait
   * in memory for as long as the outage lasts. The callers answer ERR UNAVAILABLE (gateway) or
   * retry their batch (router).
   */
  async publish(items: PublishItem[]): Promise<void> {
    if (items.length === 0) return;
    if (LOST.has(this.redis.status)) throw new BusUnavailableError(`redis ${this.redis.status}`);
    if (this.inFlight >= MAX_PUBLISHES_IN_FLIGHT) throw new BusUnavailableError(`redis slow: ${this.inFlight} publishes awaiting an answer`);
    let bytes = 0;
    for (const it of items) bytes += Buffer.byteLength(it.payload);
    // One publish larger than the whole allowance still goes when nothing else waits.
    if (this.bytesInFlight > 0 && this.bytesInFlight + bytes > this.maxBytesInFlight) {
      throw new BusUnavailableError(`redis slow: ${this.bytesInFlight} bytes of publishes awaiting an answer`);
    }
    // A Cluster pipeline must keep to one slot: one per stream there, all at once.
    const groups = this.clustered ? [...Map.groupBy(items, (it) => it.stream).values()] : [items];
    this.inFlight++;
    this.bytesInFlight += bytes;
    try {
      const results = await Promise.allSettled(groups.map((g) => this.xaddAll(g)));
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    } finally {
      this.inFlight--;
      this.bytesInFlight -= bytes;
    }
  }

  private async xaddAll(items: PublishItem[]): Promise<void> {
    const p = this.redis.pipeline();
    for (const it of items) {
      if (it.maxLen !== undefined) p.xadd(it.stream, "MAXLEN", "~", it.maxLen, "*", "p", it.payload);
      else p.xadd(it.stream, "*", "p", it.payload);
    }
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  consumer(opts: ConsumerOptions, handler: BatchHandler, logger: Logger): Consumer {
    return new ConsumerLoop(new RedisStreamBackend(this.redis, opts), opts, handler, logger);
  }

  async streamLength(stream: string): Promise<number> {
    if (LOST.has(this.redis.status)) throw new BusUnavailableError(`redis ${this.redis.status}`);
    return this.redis.xlen(stream);
  }

  /**
   * Checks BUS_SHARDS against the count the bus's other processes recorded (shards.ts), before
   * the process starts its work. Throws a ConfigError on a difference. Redis not answering
   * within waitMs (it may be down while this process starts, which is allowed) does not hold up
   * the start: the check finishes when Redis answers, and a difference found then is logged
   * as an error (the process already runs). Resolves whether it was checked in time.
   */
  async checkShards(shards: number, logger: Logger, waitMs = 5000): Promise<boolean> {
    const check = agreeOnShards(this.redis, this.key(SHARDS_KEY), shards);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), waitMs);
      timer.unref();
    });
    try {
      if ((await Promise.race([check, late])) !== "late") return true;
    } finally {
      clearTimeout(timer);
    }
    logger.warn({ shards }, "BUS_SHARDS not checked against the other processes yet: Redis is not answering; checked when it does");
    check.catch((e: unknown) => {
      if (!this.closed) logger.error({ err: e }, (e as Error).message);
    });
    return false;
  }

  async ping(): Promise<void> {
    if (this.redis.status !== "ready") throw new Error(`redis ${this.redis.status}`);
    await this.redis.ping();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.redis.disconnect();
  }
}

class RedisStreamBackend implements StreamBackend {
  private readonly shared: RedisClient;
  // A blocking read holds its connection; it gets one of its own.
  private readonly blocking: RedisClient;
  private readonly opts: ConsumerOptions;
  private claims = 0;
  private disconnected = false;

  constructor(shared: RedisClient, opts: ConsumerOptions) {
    this.shared = shared;
    this.blocking = duplicateClient(shared);
    this.blocking.on("error", () => undefined);
    this.opts = opts;
  }

  async ensureGroup(): Promise<void> {
    try {
      await this.shared.xgroup("CREATE", this.opts.stream, this.opts.group, "0", "MKSTREAM");
    } catch (e) {
      if (!String((e as Error).message).includes("BUSYGROUP")) throw e;
    }
  }

  async readNew(count: number, blockMs: number): Promise<BusEntry[]> {
    const o = this.opts;
    try {
      const res = (await this.blocking.xreadgroup("GROUP", o.group, o.consumer, "COUNT", count, "BLOCK", blockMs, "STREAMS", o.stream, ">")) as
        | Array<[string, RawEntries]>
        | null;
      return toEntries(res?.[0]?.[1]);
    } catch (e) {
      // The stream (and so the group) vanished, e.g. Redis restarted without persistence.
      if (String((e as Error).message).includes("NOGROUP")) {
        await this.ensureGroup();
        return [];
      }
      throw e;
    }
  }

  async claimIdle(minIdleMs: number, count: number): Promise<BusEntry[]> {
    const o = this.opts;
    try {
      const res = (await this.shared.xautoclaim(o.stream, o.group, o.consumer, minIdleMs, "0-0", "COUNT", count)) as [string, RawEntries, string[]?];
      if (++this.claims % 20 === 0) await this.forgetDeadConsumers(minIdleMs);
      return toEntries(res[1]);
    } catch (e) {
      if (String((e as Error).message).includes("NOGROUP")) return [];
      throw e;
    }
  }

  /**
   * Every restarted router joins under a new name; names idle for long with nothing pending
   * are removed so the group's consumer list does not grow forever.
   */
  private async forgetDeadConsumers(minIdleMs: number): Promise<void> {
    const o = this.opts;
    const idleLimit = Math.max(minIdleMs * 10, 3_600_000);
    const rows = (await this.shared.xinfo("CONSUMERS", o.stream, o.group)) as Array<Array<string | number>>;
    for (const row of rows) {
      const info: Record<string, string | number> = {};
      for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1]!;
      if (info.name !== o.consumer && Number(info.pending) === 0 && Number(info.idle) > idleLimit) {
        await this.shared.xgroup("DELCONSUMER", o.stream, o.group, String(info.name));
      }
    }
  }

  async ack(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const p = this.shared.pipeline().xack(this.opts.stream, this.opts.group, ...ids);
    if (this.opts.deleteOnAck) p.xdel(this.opts.stream, ...ids);
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  async deadLetter(entry: BusEntry, reason: string): Promise<void> {
    await this.shared.xadd(`${this.opts.stream}:dead`, "MAXLEN", "~", 10000, "*", "p", entry.payload, "id", entry.id, "reason", reason);
  }

  interrupt(): void {
    // Dropping the blocking connection ends the pending XREADGROUP at once. Only once: each
    // ioredis disconnect() of an already closing socket arms a 2 s timer that nothing clears,
    // which kept the process alive for 2 s after close().
    if (this.disconnected) return;
    this.disconnected = true;
    this.blocking.disconnect();
  }

  async close(): Promise<void> {
    this.interrupt();
  }
}
