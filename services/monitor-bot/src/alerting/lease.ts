/**
 * Which replica sends the alerts and polls Telegram: the holder of a Redis lease
 * (`SET key id NX PX ttl`, renewed every ttl/3 only while the key still holds our id, deleted
 * on a clean stop). When the holder dies, its key expires and another replica takes it within
 * ttl plus one attempt period.
 *
 * LeaseState holds the rules, free of I/O: leadership counts only until the last successful
 * renewal's start plus ttl (less a margin), so a replica that stalls stops alerting before the
 * key can have passed to someone else. If Redis itself cannot be reached for a whole ttl, the
 * replica may still alert ("degraded"): two replicas then both send, which beats both staying
 * silent while something, perhaps Redis, is down.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "@pesan/shared/observability";
import type { Lifecycle } from "@pesan/shared/runtime";

export type Role = "leader" | "follower";

export class LeaseState {
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private role: Role = "follower";
  private validUntil = 0;
  private failingSince: number | undefined;

  constructor(ttlMs: number) {
    this.ttlMs = ttlMs;
    // Room for a clock step and the time the answer took to arrive.
    this.marginMs = Math.min(1000, Math.round(ttlMs / 10));
  }

  /** We hold the key: an acquisition or a renewal sent at `sentAt` succeeded. */
  held(sentAt: number): void {
    this.role = "leader";
    this.validUntil = sentAt + this.ttlMs;
    this.failingSince = undefined;
  }

  /** Redis answered that someone else holds it (or our renewal found the key gone). */
  lost(): void {
    this.role = "follower";
    this.validUntil = 0;
    this.failingSince = undefined;
  }

  /** Redis could not be asked. Leadership runs out at validUntil on its own. */
  failed(now: number): void {
    this.failingSince ??= now;
  }

  isLeader(now: number): boolean {
    return this.role === "leader" && now < this.validUntil - this.marginMs;
  }

  /** True while we were leader last time we knew (renew) or not (try to acquire). */
  wantsRenewal(now: number): boolean {
    return this.role === "leader" && now < this.validUntil;
  }

  degraded(now: number): boolean {
    return this.failingSince !== undefined && now - this.failingSince >= this.ttlMs;
  }

  mayAlert(now: number): boolean {
    return this.isLeader(now) || this.degraded(now);
  }
}

export interface Lease extends Lifecycle {
  /** Polls Telegram only as leader: getUpdates allows one caller per bot. */
  isLeader(): boolean;
  /** Leader, or cut off from Redis long enough that staying silent is worse than a duplicate. */
  mayAlert(): boolean;
  /** Called after every change of isLeader() or mayAlert(). */
  onChange(fn: () => void): void;
}

/** One replica without Redis: always the leader. */
export class LocalLease implements Lease {
  readonly name = "lease";
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  isLeader(): boolean {
    return true;
  }
  mayAlert(): boolean {
    return true;
  }
  onChange(): void {}
}

const RENEW = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

export class RedisLease implements Lease {
  readonly name = "lease";
  readonly id: string;
  private readonly redis: Redis;
  private readonly key: string;
  private readonly ttlMs: number;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly state: LeaseState;
  private readonly listeners: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private last = { leader: false, alert: false };

  constructor(deps: { redis: Redis; logger: Logger; now?: () => number }, opts: { key: string; ttlMs: number; instance: string }) {
    this.redis = deps.redis;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.key = opts.key;
    this.ttlMs = opts.ttlMs;
    this.id = `${opts.instance}:${randomUUID()}`;
    this.state = new LeaseState(opts.ttlMs);
  }

  isLeader(): boolean {
    return this.state.isLeader(this.now());
  }

  mayAlert(): boolean {
    return this.state.mayAlert(this.now());
  }

  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  async start(): Promise<void> {
    await this.attempt();
  }

  private schedule(): void {
    if (this.closed) return;
    // Three tries per ttl: a renewal may fail once and still land before the key expires.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.attempt();
    }, Math.max(20, Math.round(this.ttlMs / 3)));
  }

  private async attempt(): Promise<void> {
    const sentAt = this.now();
    try {
      if (this.state.wantsRenewal(sentAt)) {
        const renewed = await this.redis.eval(RENEW, 1, this.key, this.id, String(this.ttlMs));
        if (Number(renewed) === 1) this.state.held(sentAt);
        else {
          this.logger.warn({ key: this.key }, "alert leadership lost (the lease expired and was taken)");
          this.state.lost();
        }
      }
      if (!this.state.wantsRenewal(this.now())) {
        const ok = await this.redis.set(this.key, this.id, "PX", this.ttlMs, "NX");
        if (ok === "OK") this.state.held(sentAt);
        else this.state.lost();
      }
    } catch (e) {
      if (!this.state.degraded(this.now())) this.logger.warn({ err: e, key: this.key }, "cannot reach Redis for the alert lease");
      this.state.failed(sentAt);
    }
    this.notify();
    this.schedule();
  }

  /** Tells the listeners when leadership or the right to alert changed, and logs it. */
  private notify(): void {
    const now = { leader: this.isLeader(), alert: this.mayAlert() };
    if (now.leader === this.last.leader && now.alert === this.last.alert) return;
    if (now.leader !== this.last.leader) this.logger.info({ key: this.key, id: this.id }, now.leader ? "became the alert leader" : "no longer the alert leader");
    if (now.alert && !now.leader) this.logger.warn({ key: this.key }, "Redis unreachable for a whole lease: alerting anyway (other replicas may too)");
    this.last = now;
    for (const fn of this.listeners) {
      try {
        fn();
      } catch (e) {
        this.logger.error({ err: e }, "lease listener threw");
      }
    }
  }

  /** Stops renewing and hands the lease over at once (the key is ours only if it still holds our id). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    const wasLeader = this.state.wantsRenewal(this.now());
    this.state.lost();
    this.notify();
    if (!wasLeader) return;
    try {
      await this.redis.eval(RELEASE, 1, this.key, this.id);
    } catch (e) {
      this.logger.warn({ err: e }, "could not release the alert lease; it expires by itself");
    }
  }
}
