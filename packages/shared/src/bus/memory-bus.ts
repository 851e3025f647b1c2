/**
 * The in-process backend for the embedded mode (like Centrifugo's memory engine): the same
 * consumer-group semantics as Redis streams, without persistence.
 */
import type { Logger } from "../observability/log.ts";
import { ConsumerLoop, type Bus, type BusEntry, type ConsumerOptions, type BatchHandler, type Consumer, type PublishItem, type StreamBackend } from "./bus.ts";

interface Pending {
  entry: BusEntry;
  /** Position in the stream's history. */
  abs: number;
  consumer: string;
  since: number;
}

interface Group {
  next: number;
  pending: Map<string, Pending>;
}

class MemStream {
  entries: BusEntry[] = [];
  /** Index of entries[0] in the stream's history, so groups keep positions after trimming. */
  base = 0;
  groups = new Map<string, Group>();
  waiters = new Set<() => void>();
  dead: Array<BusEntry & { reason: string }> = [];

  wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }
}

export class MemoryBus implements Bus {
  readonly kind = "memory";
  private readonly streams = new Map<string, MemStream>();
  private lastMs = 0;
  private seq = 0;
  private readonly prefix: string;

  constructor(prefix = "pesan:") {
    this.prefix = prefix;
  }

  key(name: string): string {
    return this.prefix + name;
  }

  stream(name: string): MemStream {
    let s = this.streams.get(name);
    if (!s) {
      s = new MemStream();
      this.streams.set(name, s);
    }
    return s;
  }

  /** Ids like Redis's (ms-seq), so ids stay unique across restarts of the process. */
  private nextId(): string {
    const now = Date.now();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else this.seq++;
    return `${this.lastMs}-${this.seq}`;
  }

  async streamLength(stream: string): Promise<number> {
    return this.streams.get(stream)?.entries.length ?? 0;
  }

  async publish(items: PublishItem[]): Promise<void> {
    for (const it of items) {
      const s = this.stream(it.stream);
      s.entries.push({ id: this.nextId(), payload: it.payload });
      if (it.maxLen !== undefined && s.entries.length > it.maxLen) {
        const drop = s.entries.length - it.maxLen;
        s.entries.splice(0, drop);
        s.base += drop;
      }
      s.wake();
    }
  }

  consumer(opts: ConsumerOptions, handler: BatchHandler, logger: Logger): Consumer {
    return new ConsumerLoop(new MemoryStreamBackend(this.stream(opts.stream), opts), opts, handler, logger);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    for (const s of this.streams.values()) s.wake();
  }
}

class MemoryStreamBackend implements StreamBackend {
  private readonly s: MemStream;
  private readonly opts: ConsumerOptions;
  private wakeMe: (() => void) | undefined;

  constructor(s: MemStream, opts: ConsumerOptions) {
    this.s = s;
    this.opts = opts;
  }

  private group(): Group {
    let g = this.s.groups.get(this.opts.group);
    if (!g) {
      g = { next: this.s.base, pending: new Map() };
      this.s.groups.set(this.opts.group, g);
    }
    return g;
  }

  async ensureGroup(): Promise<void> {
    this.group();
  }

  async readNew(count: number, blockMs: number): Promise<BusEntry[]> {
    let out = this.take(count);
    if (out.length > 0) return out;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, blockMs);
      const s = this.s;
      function done() {
        clearTimeout(timer);
        s.waiters.delete(done);
        resolve();
      }
      this.wakeMe = done;
      s.waiters.add(done);
    });
    this.wakeMe = undefined;
    out = this.take(count);
    return out;
  }

  private take(count: number): BusEntry[] {
    const g = this.group();
    const start = Math.max(g.next, this.s.base) - this.s.base;
    const batch = this.s.entries.slice(start, start + count);
    g.next = this.s.base + start + batch.length;
    const now = Date.now();
    const first = this.s.base + start;
    batch.forEach((e, i) => g.pending.set(e.id, { entry: e, abs: first + i, consumer: this.opts.consumer, since: now }));
    return batch;
  }

  async claimIdle(minIdleMs: number, count: number): Promise<BusEntry[]> {
    const out: BusEntry[] = [];
    const now = Date.now();
    for (const p of this.group().pending.values()) {
      if (out.length >= count) break;
      if (now - p.since >= minIdleMs) {
        p.consumer = this.opts.consumer;
        p.since = now;
        out.push(p.entry);
      }
    }
    return out;
  }

  async ack(ids: string[]): Promise<void> {
    const g = this.group();
    for (const id of ids) g.pending.delete(id);
    if (this.opts.deleteOnAck) this.trimAcked();
  }

  /** Drops the acknowledged prefix of the stream once every group has read and acked it. */
  private trimAcked(): void {
    let keep = Infinity;
    for (const g of this.s.groups.values()) {
      keep = Math.min(keep, g.next);
      for (const p of g.pending.values()) keep = Math.min(keep, p.abs);
    }
    const drop = Math.min(this.s.entries.length, keep - this.s.base);
    if (drop > 0) {
      this.s.entries.splice(0, drop);
      this.s.base += drop;
    }
  }

  async deadLetter(entry: BusEntry, reason: string): Promise<void> {
    this.s.dead.push({ ...entry, reason });
  }

  interrupt(): void {
    this.wakeMe?.();
  }

  async close(): Promise<void> {}
}
