/**
 * The batch's buffered writes: the hot commands (SEND, ACK, a session's first proof, the
 * gateway's withheld notices, frames for the other clusters) only record what to write; flush()
 * writes each kind as one statement. It runs before any command that reads messages (so it sees
 * them) and at the end of the batch, inside its transaction.
 */
import type { Queryable } from "@pesan/shared/db";
import { enqueueFrames } from "@pesan/shared/replication";
import * as store from "../store.ts";
import type { NewMessage, Session } from "../store.ts";
import type { PendingSend, SendDedup } from "./exactly-once.ts";
import type { Frame, ReqCtx } from "./types.ts";

export class BatchWrites {
  private readonly tx: Queryable;
  private readonly once: SendDedup;
  private sends: PendingSend[] = [];
  private acks: Array<{ id: string; recipient: string }> = [];
  private frames: Frame[] = [];
  private withheld: string[] = [];
  private proven: Array<{ user: string; keyId: string }> = [];
  private afterFlushes: Array<() => Promise<void>> = [];
  /**
   * Set once a flush wrote what a crash must not lose even in a batch of only ACKs and
   * heartbeats: a session's first proof (after a lost one, forged plain datagrams would act in
   * the session again), frames for the other clusters (peer-sync may send them before the WAL
   * flush; their ids must not be handed out again), sends, withheld notices.
   */
  needsDurable = false;

  constructor(tx: Queryable, once: SendDedup) {
    this.tx = tx;
    this.once = once;
  }

  bufferSend(ctx: ReqCtx, msg: NewMessage, token: string | undefined, frame?: Frame): void {
    this.sends.push({ ctx, msg, token, frame });
  }

  /** A frame for every peer, written with the batch's other frames (one statement per flush). */
  bufferFrame(frame: Frame): void {
    this.frames.push(frame);
  }

  bufferAck(id: string, recipient: string): void {
    this.acks.push({ id, recipient });
  }

  /** A MSG the gateway did not send (amplification bound): it is offered again later. */
  bufferWithheld(id: string): void {
    this.withheld.push(id);
  }

  /** The session's first valid proof since its key was issued. */
  bufferProven(s: Session): void {
    s.proven = true;
    this.proven.push({ user: s.user, keyId: s.proofKeyId });
  }

  /** Work that reads messages, so it must see this batch's writes: runs at the next flush. */
  afterFlush(fn: () => Promise<void>): void {
    this.afterFlushes.push(fn);
  }

  /** Writes what the fast commands buffered. Must run before anything reads messages. */
  async flush(): Promise<void> {
    const { sends, acks, withheld, proven } = this;
    const frames = this.frames;
    this.sends = [];
    this.acks = [];
    this.frames = [];
    this.withheld = [];
    this.proven = [];
    await store.markProven(this.tx, proven);
    // A message's frame goes out only if the message was stored (not a retry's).
    for (const p of await this.once.storeSends(sends)) if (p.frame) frames.push(p.frame);
    await enqueueFrames(this.tx, frames);
    const stateFrames = await store.ackMessages(this.tx, acks);
    await store.undeliverWithheld(this.tx, withheld);
    const after = this.afterFlushes;
    if (proven.length > 0 || sends.length > 0 || frames.length > 0 || stateFrames > 0 || withheld.length > 0 || after.length > 0) this.needsDurable = true;
    this.afterFlushes = [];
    for (const fn of after) await fn();
  }
}
