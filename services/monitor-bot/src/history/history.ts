/**
 * Writes samples and events to Postgres in batches (one insert per table per flush), off the
 * probe path: a slow or unreachable database delays history, never a probe. Rows that cannot be
 * written are kept and retried, up to a bound, then dropped and counted. Also prunes old rows.
 */
import type { Db } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import type { MonitorEvent } from "../alerting/events.ts";
import type { MonitorMetrics } from "../metrics.ts";
import { Every } from "../probes/schedule.ts";
import { insertEvents, insertSamples, pruneHistory, type SampleRow } from "./store.ts";

const MAX_BUFFERED = 50_000;

export interface HistoryOptions {
  source: string;
  flushEveryMs: number;
  pruneEveryMs: number;
  retentionMs: number;
  eventRetentionMs: number;
}

export class HistoryWriter {
  readonly name = "history";
  private readonly db: Db;
  private readonly logger: Logger;
  private readonly metrics: MonitorMetrics | undefined;
  private readonly opts: HistoryOptions;
  private readonly now: () => Date;
  private samples: SampleRow[] = [];
  private events: MonitorEvent[] = [];
  private readonly flusher: Every;
  private readonly pruner: Every;
  /** The last write queued; write() never rejects, so the chain never breaks. */
  private writes: Promise<void> = Promise.resolve();
  private failing = false;

  constructor(deps: { db: Db; logger: Logger; metrics?: MonitorMetrics; now: () => Date }, opts: HistoryOptions) {
    this.db = deps.db;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.now = deps.now;
    this.opts = opts;
    this.flusher = new Every("history-flush", opts.flushEveryMs, () => this.flush(), deps.logger);
    this.pruner = new Every("history-prune", opts.pruneEveryMs, () => this.prune(), deps.logger);
  }

  async start(): Promise<void> {
    await this.flusher.start();
    await this.pruner.start();
  }

  sample(row: SampleRow): void {
    this.samples.push(row);
    this.bound();
  }

  event(e: MonitorEvent): void {
    this.events.push(e);
    this.bound();
  }

  private bound(): void {
    const over = this.samples.length + this.events.length - MAX_BUFFERED;
    // Samples go first: status changes are what the alerting history must not lose.
    if (over > 0) {
      const drop = Math.min(over, this.samples.length);
      this.samples.splice(0, drop);
      this.metrics?.historyDropped.inc(drop);
    }
  }

  /**
   * Writes what is buffered when it is called. Writes run one at a time (rows keep their
   * order); a call made while one runs waits for it and then writes what came since, since
   * the running one took its rows before. (Sharing the running write lost a caller's rows.)
   */
  flush(): Promise<void> {
    this.writes = this.writes.then(() => this.write());
    return this.writes;
  }

  private async write(): Promise<void> {
    const events = this.events;
    const samples = this.samples;
    if (events.length === 0 && samples.length === 0) return;
    this.events = [];
    this.samples = [];
    try {
      await this.db.withTransaction(async (tx) => {
        await insertEvents(tx, this.opts.source, events);
        await insertSamples(tx, this.opts.source, samples);
      });
      if (this.failing) this.logger.info("history writes work again");
      this.failing = false;
    } catch (e) {
      // Put them back in front of anything newer, so order is kept for the retry.
      this.events = [...events, ...this.events];
      this.samples = [...samples, ...this.samples];
      this.bound();
      if (!this.failing) this.logger.error({ err: e, buffered: this.samples.length + this.events.length }, "cannot write history; will retry");
      this.failing = true;
    }
  }

  async prune(): Promise<void> {
    const now = this.now().getTime();
    try {
      const r = await pruneHistory(this.db, new Date(now - this.opts.retentionMs), new Date(now - this.opts.eventRetentionMs));
      if (r.samples + r.events > 0) this.logger.info(r, "old history pruned");
    } catch (e) {
      this.logger.warn({ err: e }, "history pruning failed");
    }
  }

  /** Stops the loops and writes what is left (one attempt). */
  async close(): Promise<void> {
    await this.pruner.close();
    await this.flusher.close();
    await this.flush();
  }
}
