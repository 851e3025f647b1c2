/**
 * Reconnect delays: exponential from `minMs`, capped at `maxMs`, each drawn at random from the
 * upper half of its step ("equal jitter"), so a fleet that lost the same server does not come
 * back in lock-step, yet no wait is ever shorter than half the step. The cap is kept low (1 s
 * by default): a dependency that returns is used again within about a second.
 */
export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  /** A number in [0, 1); Math.random unless a test injects one. */
  random?: () => number;
}

export class Backoff {
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(o: BackoffOptions = {}) {
    this.minMs = o.minMs ?? 50;
    this.maxMs = o.maxMs ?? 1000;
    this.random = o.random ?? Math.random;
    if (!(this.minMs > 0 && this.maxMs >= this.minMs)) throw new Error(`bad backoff bounds ${this.minMs}..${this.maxMs}`);
  }

  /** The wait before the next attempt; each call doubles the step up to the cap. */
  next(): number {
    return backoffDelay(this.attempt++, this.minMs, this.maxMs, this.random);
  }

  /** After a success: the next failure starts again from the smallest step. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** The wait before attempt number `attempt` (0 first): for callers that count attempts themselves. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(step / 2 + (random() * step) / 2);
}
