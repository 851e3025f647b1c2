import type { Logger } from "../observability/log.ts";

/**
 * Runs a task every intervalMs (measured from one start to the next), never overlapping
 * itself. A failing run is logged once, then every 30 s while it keeps failing: a database
 * outage must not write a line per round. kick() runs the next round now.
 */
export class Loop {
  readonly name: string;
  private readonly intervalMs: number;
  private readonly task: () => Promise<void>;
  private readonly logger: Logger;
  private readonly immediate: boolean;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private kicked = false;
  private failingSince: number | undefined;
  private lastReport = 0;

  constructor(name: string, intervalMs: number, task: () => Promise<void>, logger: Logger, o: { immediate?: boolean } = {}) {
    this.name = name;
    this.intervalMs = intervalMs;
    this.task = task;
    this.logger = logger;
    this.immediate = o.immediate ?? false;
  }

  async start(): Promise<void> {
    this.schedule(this.immediate ? 0 : this.intervalMs);
  }

  /** Runs the task as soon as the current run (if any) ends. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.kicked = true;
      return;
    }
    clearTimeout(this.timer);
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.run(), delayMs);
  }

  private run(): void {
    const startedAt = Date.now();
    this.kicked = false;
    this.running = this.task()
      .then(() => {
        if (this.failingSince !== undefined) this.logger.info({ task: this.name, failedForMs: Date.now() - this.failingSince }, "background task recovered");
        this.failingSince = undefined;
      })
      .catch((err: unknown) => {
        const now = Date.now();
        this.failingSince ??= now;
        if (now - this.lastReport >= 30_000) {
          this.lastReport = now;
          this.logger.warn({ err, task: this.name, failingForMs: now - this.failingSince }, "background task failing");
        }
      })
      .finally(() => {
        this.running = undefined;
        this.schedule(this.kicked ? 0 : Math.max(0, this.intervalMs - (Date.now() - startedAt)));
      });
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
