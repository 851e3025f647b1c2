/**
 * What the replicas share in Redis besides the lease: which Telegram updates were handled
 * (Telegram delivers at least once, and a new polling leader starts where the last one
 * stopped), and the alert records (so a new leader keeps the reminder cadence). Without Redis
 * (a single replica) the same lives in memory.
 */
import type { Redis } from "ioredis";
import type { AlertRecord } from "./alert-plan.ts";

export interface BotState {
  /** True the first time any replica asks about this update id. */
  firstSeen(updateId: number): Promise<boolean>;
  /** The getUpdates offset to start from: one past the last update handled. */
  offset(): Promise<number | undefined>;
  setOffset(next: number): Promise<void>;
  loadAlerts(): Promise<Map<string, AlertRecord>>;
  saveAlerts(changed: ReadonlyMap<string, AlertRecord>, removed: readonly string[]): Promise<void>;
}

/** Telegram redelivers for up to a day; remembering ids that long covers it. */
const SEEN_TTL_MS = 86_400_000;
/** Records outlive no outage by much; a week bounds what a forgotten one costs. */
const ALERTS_TTL_MS = 7 * 86_400_000;

export class RedisBotState implements BotState {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  async firstSeen(updateId: number): Promise<boolean> {
    return (await this.redis.set(`${this.prefix}tg:update:${updateId}`, "1", "PX", SEEN_TTL_MS, "NX")) === "OK";
  }

  async offset(): Promise<number | undefined> {
    const v = await this.redis.get(`${this.prefix}tg:offset`);
    return v === null ? undefined : Number(v);
  }

  async setOffset(next: number): Promise<void> {
    // Only forward: an update handled late must not rewind a newer offset.
    await this.redis.eval(
      `local c = tonumber(redis.call("GET", KEYS[1]) or "0") if tonumber(ARGV[1]) > c then redis.call("SET", KEYS[1], ARGV[1]) end return 1`,
      1,
      `${this.prefix}tg:offset`,
      String(next),
    );
  }

  async loadAlerts(): Promise<Map<string, AlertRecord>> {
    const all = await this.redis.hgetall(`${this.prefix}alerts`);
    const out = new Map<string, AlertRecord>();
    for (const [component, json] of Object.entries(all)) {
      try {
        const r = JSON.parse(json) as AlertRecord;
        if (Number.isFinite(r.since) && Number.isFinite(r.lastAt)) out.set(component, { since: r.since, lastAt: r.lastAt, count: Number(r.count) || 0 });
      } catch {
        // a record this version cannot read is dropped: the next reminder recreates it
      }
    }
    return out;
  }

  async saveAlerts(changed: ReadonlyMap<string, AlertRecord>, removed: readonly string[]): Promise<void> {
    if (changed.size === 0 && removed.length === 0) return;
    const key = `${this.prefix}alerts`;
    const p = this.redis.multi();
    if (removed.length > 0) p.hdel(key, ...removed);
    for (const [component, r] of changed) p.hset(key, component, JSON.stringify(r));
    p.pexpire(key, ALERTS_TTL_MS);
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0];
  }
}

export class MemoryBotState implements BotState {
  private readonly seen = new Map<number, number>();
  private next: number | undefined;
  private alerts = new Map<string, AlertRecord>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  async firstSeen(updateId: number): Promise<boolean> {
    const t = this.now();
    for (const [id, at] of this.seen) if (t - at > SEEN_TTL_MS) this.seen.delete(id);
    if (this.seen.has(updateId)) return false;
    this.seen.set(updateId, t);
    return true;
  }

  async offset(): Promise<number | undefined> {
    return this.next;
  }

  async setOffset(next: number): Promise<void> {
    this.next = Math.max(this.next ?? 0, next);
  }

  async loadAlerts(): Promise<Map<string, AlertRecord>> {
    return new Map(this.alerts);
  }

  async saveAlerts(changed: ReadonlyMap<string, AlertRecord>, removed: readonly string[]): Promise<void> {
    for (const c of removed) this.alerts.delete(c);
    for (const [c, r] of changed) this.alerts.set(c, r);
  }
}
