/**
 * The bus between gateways and routers: append-only streams read by consumer groups, with
 * at-least-once delivery. Two backends sit behind one interface (Redis streams for real
 * deployments, memory for the embedded mode); the consumer loop, with its retry, reclaim and
 * dead-letter rules, is shared by both.
 */
import type { Logger } from "../observability/log.ts";
import { Backoff } from "../retry/backoff.ts";

export interface BusEntry {
  id: string;
  payload: string;
}

export interface PublishItem {
  stream: string;
  payload: string;
  /** Approximate cap on the stream's length; omit for streams whose entries must never be dropped. */
  maxLen?: number;
}

export interface ConsumerOptions {
  stream: string;
  group: string;
  consumer: string;
  /** Entries per read. */
  count: number;
  /** How long one blocking read waits. */
  blockMs: number;
  /** Entries pending longer than this on another consumer are taken over (it is presumed dead). */
  claimIdleMs: number;
  /** Delete entries once acknowledged, so the stream holds only unprocessed work. */
  deleteOnAck: boolean;
  /** Errors for which the batch is retried as is (the database is down), as opposed to bad entries. */
  isTransient: (err: unknown) => boolean;
}

/**
 * Entries whose work goes on after the handler resolved (the router's password queue): each
 * stays pending, unacknowledged, until its `done` resolves, so a consumer that dies meanwhile
 * leaves it to be taken over. A `done` that rejects leaves it pending too (taken over after
 * claimIdleMs, by another consumer or this one).
 */
export interface HeldEntries {
  held: Array<{ id: string; done: Promise<void> }>;
}

/** Resolves once the batch's effects are committed; entries it holds are acknowledged later. */
export type BatchHandler = (entries: BusEntry[]) => Promise<void | HeldEntries>;

export interface Consumer {
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface Bus {
  readonly kind: "redis" | "memory";
  /** The full key of a stream name under this bus's prefix. */
  key(name: string): string;
  /** Appends every item in one round trip. */
  publish(items: PublishItem[]): Promise<void>;
  consumer(opts: ConsumerOptions, handler: BatchHandler, logger: Logger): Consumer;
  /** Entries in the stream now (unread and unacknowledged ones: consumers delete on ack). */
  streamLength(stream: string): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The bus cannot take work now (Redis away or not answering); try again shortly. */
export class BusUnavailableError extends Error {
  readonly code = "EBUSUNAVAILABLE";
  constructor(message: string) {
    super(`bus unavailable: ${message}`);
    this.name = "BusUnavailableError";
  }
}

/** Errors meaning "Redis is away or still loading", as opposed to a bad command. */
export function isTransientBusError(e: unknown): boolean {
  if (e instanceof BusUnavailableError || (e as { code?: unknown })?.code === "EBUSUNAVAILABLE") return true;
  const msg = String((e as Error)?.message ?? "");
  // OOM: Redis at its maxmemory (noeviction) refuses writes until the routers drain the streams.
  // READONLY: the primary was demoted (Sentinel failover); NOREPLICAS: it lost its replicas
  // (min-replicas-to-write); "sentinels are unreachable": no primary named yet.
  if (/Connection is closed|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|MaxRetriesPerRequest|LOADING|READONLY|NOREPLICAS|sentinels are unreachable|Stream isn't writeable|Command timed out|Too many Cluster redirections|^OOM /i.test(msg)) {
    return true;
  }
  return REDIS_CLUSTER_MOVING.test(msg);
}

/**
 * Redis Cluster mid-failover (a master died, its replica not yet promoted): the other masters
 * answer CLUSTERDOWN, a slot being moved answers TRYAGAIN, MOVED or ASK, and a master that lost
 * its own master answers MASTERDOWN. ioredis follows redirections, but a pipeline hands back the
 * raw reply once its retries are used up (a single command fails "Too many Cluster
 * redirections", above). Each is Redis's reply prefix, in capitals, so it is matched as such:
 * "ask" in the text of some other error is not one.
 */
const REDIS_CLUSTER_MOVING = /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|MASTERDOWN)( |$)/;

/** What a backend must offer the shared consumer loop. */
export interface StreamBackend {
  ensureGroup(): Promise<void>;
  /** New entries for this consumer, waiting up to blockMs. */
  readNew(count: number, blockMs: number): Promise<BusEntry[]>;
  /** Entries of other consumers pending longer than minIdleMs, now owned by this one. */
  claimIdle(minIdleMs: number, count: number): Promise<BusEntry[]>;
  ack(ids: string[]): Promise<void>;
  deadLetter(entry: BusEntry, reason: string): Promise<void>;
  /** Wakes a blocked readNew so close() does not wait for blockMs. */
  interrupt(): void;
  close(): Promise<void>;
}

/**
 * Retries of a failing read or batch (Redis or the database away): from 50 ms, with jitter, at
 * most a second apart, so work resumes within about a second of the dependency's return.
 */
const RETRY = { minMs: 50, maxMs: 500 };
/** While it keeps failing, one log line per this long (an outage must not flood the log). */
const REPORT_EVERY_MS = 10_000;

/**
 * Reads, hands batches to the handler, and acknowledges only after the handler resolved
 * (i.e. after its effects are committed). A transient failure retries the same batch with
 * backoff, forever; any other failure splits the batch and dead-letters the entry that fails
 * on its own, so one bad entry never blocks the stream.
 */
export class ConsumerLoop implements Consumer {
  private running = false;
  private closed = false;
  private loop: Promise<void> | undefined;
  private lastClaim = 0;
  private sleeper: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private readonly backend: StreamBackend;
  private readonly opts: ConsumerOptions;
  private readonly handler: BatchHandler;
  private readonly logger: Logger;
  /** Entries held by the handler, acknowledged when their work is done. */
  private readonly holding = new Map<string, Promise<void>>();
  /** The acknowledgement in flight, if any (see acknowledge()). */
  private acking: Promise<void> = Promise.resolve();

  constructor(backend: StreamBackend, opts: ConsumerOptions, handler: BatchHandler, logger: Logger) {
    this.backend = backend;
    this.opts = opts;
    this.handler = handler;
    this.logger = logger;
  }

  async start(): Promise<void> {
    if (this.running || this.closed) return;
    await this.backend.ensureGroup();
    // close() (or another start()) may have run while the group was being created.
    if (this.running || this.closed) return;
    this.running = true;
    this.loop = this.run();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.running) {
      this.running = false;
      this.backend.interrupt();
      if (this.sleeper) {
        clearTimeout(this.sleeper.timer);
        this.sleeper.resolve();
      }
      await this.loop;
    }
    await this.acking;
    // Held entries finish (or stay pending) before the connection goes.
    await Promise.all([...this.holding.values()]);
    // Also when never started: the backend may hold a connection already.
    await this.backend.close();
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(RETRY);
    let failingSince: number | undefined;
    let lastReport = 0;
    let retry: BusEntry[] = [];
    while (this.running) {
      try {
        let batch = retry;
        if (batch.length === 0 && Date.now() - this.lastClaim >= this.opts.claimIdleMs / 2) {
          this.lastClaim = Date.now();
          // An entry this consumer still holds is its own work in progress, not a dead one's.
          batch = (await this.backend.claimIdle(this.opts.claimIdleMs, this.opts.count)).filter((e) => !this.holding.has(e.id));
          if (batch.length > 0) this.logger.warn({ stream: this.opts.stream, entries: batch.length }, "took over entries of a dead consumer");
        }
        if (batch.length === 0) batch = await this.backend.readNew(this.opts.count, this.opts.blockMs);
        if (batch.length > 0) {
          retry = batch;
          await this.process(batch);
          retry = [];
        }
        backoff.reset();
        if (failingSince !== undefined) this.logger.info({ stream: this.opts.stream, failedForMs: Date.now() - failingSince }, "stream processing recovered");
        failingSince = undefined;
      } catch (err) {
        if (!this.running) break;
        const now = Date.now();
        failingSince ??= now;
        if (now - lastReport >= REPORT_EVERY_MS) {
          lastReport = now;
          this.logger.error({ err, stream: this.opts.stream, retrying: retry.length, failingForMs: now - failingSince }, "stream processing failed, retrying");
        }
        await this.sleep(backoff.next());
      }
    }
  }

  private async process(batch: BusEntry[]): Promise<void> {
    let result: void | HeldEntries;
    try {
      result = await this.handler(batch);
    } catch (err) {
      if (this.opts.isTransient(err)) throw err;
      if (batch.length === 1) {
        this.logger.error({ err, entry: batch[0]!.id }, "entry failed on its own, moved to the dead-letter stream");
        await this.backend.deadLetter(batch[0]!, String((err as Error)?.message ?? err));
        await this.backend.ack([batch[0]!.id]);
        return;
      }
      this.logger.warn({ err, entries: batch.length }, "batch failed, processing its entries one by one");
      for (const e of batch) await this.process([e]);
      return;
    }
    const held = new Set<string>();
    for (const h of result?.held ?? []) {
      if (held.has(h.id)) continue;
      held.add(h.id);
      this.hold(h.id, Promise.all((result?.held ?? []).filter((x) => x.id === h.id).map((x) => x.done)));
    }
    await this.acknowledge(batch.map((e) => e.id).filter((id) => !held.has(id)));
  }

  /**
   * Acknowledges a processed batch without waiting for Redis's answer before the next read: the
   * batch's effects are committed already, and a lost acknowledgement only means the entries
   * are taken over after claimIdleMs and processed again, which every handler tolerates
   * (at-least-once). Waiting cost a round trip per batch on the path of every message (issue
   * 13). One acknowledgement in flight at most: the next waits for it, which bounds them.
   */
  private async acknowledge(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.acking;
    this.acking = this.backend.ack(ids).catch((err: unknown) => {
      this.logger.warn({ err, stream: this.opts.stream, entries: ids.length }, "could not acknowledge processed entries; they will be taken over and processed again");
    });
  }

  private hold(id: string, done: Promise<unknown>): void {
    const p = done.then(
      async () => {
        try {
          await this.backend.ack([id]);
        } catch (err) {
          this.logger.warn({ err, entry: id }, "could not acknowledge a held entry; it will be taken over");
        }
      },
      (err: unknown) => this.logger.warn({ err, entry: id }, "held entry failed; left pending to be taken over"),
    );
    this.holding.set(
      id,
      p.finally(() => this.holding.delete(id)),
    );
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.sleeper = { timer: setTimeout(resolve, ms), resolve };
    });
  }
}
