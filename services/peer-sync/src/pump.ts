/**
 * Per peer: sends our outbox to it in position order and moves that peer's cursor when it
 * acknowledges. At-least-once on the wire; the receiver's position check and idempotent
 * handlers make it once in effect.
 */
import type { Db } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import { comparePositions, framesAck, PATHS, PROTOCOL_VERSION, type FramesBody, type OutboxPosition } from "./frames.ts";
import type { PeerCaller } from "./link.ts";
import { Loop } from "@pesan/shared/runtime";
import type { PeerSyncMetrics } from "./metrics.ts";
import * as store from "./store.ts";

export interface PumpDeps {
  db: Db;
  client: PeerCaller;
  logger: Logger;
  metrics: PeerSyncMetrics;
  /** Only a peer that answers its checks is sent frames. */
  isUp: () => boolean;
  clock?: () => Date;
}

/** Batches sent per round before yielding to the next poll. */
const MAX_BATCHES_PER_ROUND = 20;

export class OutboxPump {
  readonly name: string;
  private readonly peer: string;
  private readonly batch: number;
  private readonly d: PumpDeps;
  private readonly loop: Loop;
  private readonly clock: () => Date;
  private epoch: string | undefined;
  /** Where the peer's acknowledgements got to; read once, then only this pump moves it. */
  private cursor: OutboxPosition | undefined;

  constructor(peer: string, o: { pollMs: number; batch: number }, d: PumpDeps) {
    this.name = `pump-${peer}`;
    this.peer = peer;
    this.batch = o.batch;
    this.d = d;
    this.clock = d.clock ?? (() => new Date());
    this.loop = new Loop(this.name, o.pollMs, () => this.round(), d.logger);
  }

  async start(): Promise<void> {
    await this.loop.start();
  }

  /** New rows, or the peer just came UP: do not wait for the next poll. */
  kick(): void {
    this.loop.kick();
  }

  async close(): Promise<void> {
    await this.loop.close();
  }

  /** The cursor was moved in the database (a dropped backlog): read it again before the next round. */
  forgetCursor(): void {
    this.cursor = undefined;
  }

  private async round(): Promise<void> {
    if (!this.d.isUp()) return;
    this.epoch ??= await store.epoch(this.d.db);
    for (let i = 0; i < MAX_BATCHES_PER_ROUND; i++) {
      const cursor = (this.cursor ??= await store.outCursor(this.d.db, this.peer));
      const rows = await store.readOutbox(this.d.db, this.peer, cursor, this.batch);
      if (rows.length === 0) return;
      const body: FramesBody = { v: PROTOCOL_VERSION, kind: "frames", epoch: this.epoch, frames: rows.map((r) => ({ txid: r.txid, id: r.id, kind: r.kind, data: r.data })) };
      const ack = framesAck.parse(await this.d.client.post(PATHS.frames, body));
      const last = rows.at(-1)!;
      // Never past what we sent: a confused peer must not make us skip rows it never saw.
      const upTo = comparePositions(ack.upTo, last) > 0 ? { txid: last.txid, id: last.id } : ack.upTo;
      await store.setOutCursor(this.d.db, this.peer, upTo, this.clock());
      if (comparePositions(upTo, cursor) > 0) this.cursor = upTo;
      this.d.metrics.framesSent.inc({ peer: this.peer }, rows.length);
      this.d.metrics.batchFrames.observe({ peer: this.peer }, rows.length);
      if (rows.length < this.batch) return;
    }
  }
}
