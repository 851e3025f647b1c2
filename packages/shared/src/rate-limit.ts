/**
 * Per-key token buckets with a penalty (the gateway's per address and per IP, peer-sync's
 * /v1/join per IP and overall). Once a key runs out of tokens it is told once
 * (the gateway's `ERR RATE_LIMITED`) and then dropped silently until it has calmed down: while limited,
 * every datagram still costs a token (down to a debt of one burst), and the address is let
 * through again only when its bucket is back to half full. A flood faster than the refill rate
 * therefore stays held for as long as it lasts, instead of leaking a trickle of replies;
 * answering each datagram of a flood would amplify it.
 */
export type Verdict = "ok" | "limited-first" | "limited";

interface Bucket {
  tokens: number;
  last: number;
  limited: boolean;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perSec: number;
  private readonly burst: number;

  constructor(perSec: number, burst: number) {
    this.perSec = perSec;
    this.burst = burst;
  }

  take(key: string, nowMs: number): Verdict {
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, last: nowMs, limited: false };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.last) * this.perSec) / 1000);
      b.last = nowMs;
    }
    if (b.limited && b.tokens >= this.burst / 2) b.limited = false;
    if (!b.limited && b.tokens >= 1) {
      b.tokens -= 1;
      return "ok";
    }
    b.tokens = Math.max(-this.burst, b.tokens - 1);
    if (b.limited) return "limited";
    b.limited = true;
    return "limited-first";
  }

  /** Forgets addresses whose bucket has refilled: they are idle, and memory stays bounded. */
  sweep(nowMs: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.last) * this.perSec) / 1000 >= this.burst) this.buckets.delete(k);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
