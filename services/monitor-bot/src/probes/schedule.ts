/**
 * A periodic task: runs now, then every intervalMs measured start to start. A run never
 * overlaps the previous one (a slow run delays the next, it does not pile up), every probe
 * has its own Every so a slow one never holds the others back, and close() waits for the run
 * in hand, which is itself bounded by the probe's timeout.
 */
import type { Logger } from "@pesan/shared/observability";

export class Every {
  readonly name: string;
  private readonly intervalMs: number;
  private readonly fn: () => Promise<void>;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(name: string, intervalMs: number, fn: () => Promise<void>, logger: Logger) {
    this.name = name;
    this.intervalMs = intervalMs;
    this.fn = fn;
    this.logger = logger;
  }

  async start(): Promise<void> {
    if (this.closed || this.timer || this.running) return;
    this.tick();
  }

  private tick(): void {
    if (this.closed) return;
    const started = Date.now();
    this.running = this.fn()
      .catch((e: unknown) => this.logger.error({ err: e, task: this.name }, "periodic task failed"))
      .finally(() => {
        this.running = undefined;
        if (this.closed) return;
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.tick();
        }, Math.max(0, this.intervalMs - (Date.now() - started)));
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}

/** Rejects with `${what} timed out after N ms` unless p settles first. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** At most `limit` tasks at once; the rest wait in order. */
export class Semaphore {
  private readonly limit: number;
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A released slot passes straight to the next waiter, so a newcomer cannot overtake it.
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active += 1;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}
