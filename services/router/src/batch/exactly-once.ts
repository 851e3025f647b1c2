/**
 * Exactly-once SEND (docs/protocol.md "Tags"): a SEND repeating a (session, tag) pair within
 * the 60 s window is not stored again; it is answered with the first try's reply. Pairs are
 * claimed in send_dedup in the same statement that stores the messages (store.storeSends), so
 * two routers racing on a client's retry store it once. The claim keeps the message's id, by
 * which a replay of the very same stream entry (its router died between COMMIT and publishing)
 * is told from a client's retry.
 */
import type { Queryable } from "@pesan/shared/db";
import * as store from "../store.ts";
import type { NewMessage, Session, StoredReply } from "../store.ts";
import type { Frame, ReqCtx } from "./types.ts";

/** A SEND the batch will store at its next flush. */
export interface PendingSend {
  ctx: ReqCtx;
  msg: NewMessage;
  /** The sender's session token, which with the request's tag makes the dedup key. */
  token: string | undefined;
  /** A frame for the other clusters, written only if the message is. */
  frame: Frame | undefined;
}

const key = (token: string, tag: string): string => `${token} ${tag}`;

export class SendDedup {
  private readonly tx: Queryable;
  private readonly staleBefore: Date;
  private readonly now: Date;
  private readonly reply: (ctx: ReqCtx, line: string) => void;
  /** Stored first replies of this batch's tagged SENDs (read with the batch's view). */
  private fresh = new Map<string, StoredReply>();
  /** The first SEND of each pair within this batch. */
  private readonly seen = new Map<string, ReqCtx>();

  constructor(tx: Queryable, now: Date, staleBefore: Date, reply: (ctx: ReqCtx, line: string) => void) {
    this.tx = tx;
    this.now = now;
    this.staleBefore = staleBefore;
    this.reply = reply;
  }

  /** The first replies the batch's prefetch found (BatchView.prefetch). */
  load(replies: Map<string, StoredReply>): void {
    this.fresh = replies;
  }

  /**
   * The stored first reply when this SEND repeats a tag answered before; "in-batch" when it
   * repeats one earlier in this batch (settled by settleRepeats); undefined to go ahead.
   */
  repeated(ctx: ReqCtx, s: Session): StoredReply | "in-batch" | undefined {
    if (ctx.tag === undefined) return undefined;
    const k = key(s.token, ctx.tag);
    const stored = this.fresh.get(k);
    if (stored !== undefined) return stored;
    const first = this.seen.get(k);
    if (first) {
      ctx.dupOf = first;
      return "in-batch";
    }
    this.seen.set(k, ctx);
    return undefined;
  }

  /**
   * Stores the sends and claims their tags in one statement. A tag another router holds means
   * this SEND is the client's retry racing the first try: it is not stored or delivered, and
   * gets the first reply once that one is committed. Returns the sends whose message is new.
   */
  async storeSends(sends: PendingSend[]): Promise<PendingSend[]> {
    if (sends.length === 0) return [];
    const dedupOf = (p: PendingSend) => (p.ctx.tag !== undefined && p.token !== undefined ? { token: p.token, tag: p.ctx.tag, reply: p.ctx.reply!, messageId: p.msg.id } : undefined);
    const owned = await store.storeSends(
      this.tx,
      sends.map((p) => ({ msg: p.msg, dedup: dedupOf(p) })),
      this.now,
      this.staleBefore,
    );
    const lost = sends.filter((p) => dedupOf(p) !== undefined && !owned.has(key(p.token!, p.ctx.tag!)));
    if (lost.length === 0) return sends;
    const replies = await store.sendReplies(this.tx, lost.map((p) => ({ token: p.token!, tag: p.ctx.tag! })), this.staleBefore);
    for (const p of lost) {
      const first = replies.get(key(p.token!, p.ctx.tag!));
      // Our own entry replayed (same message id): its reply and push stand as computed.
      if (first?.messageId === p.msg.id) continue;
      p.ctx.lines = [];
      p.ctx.reply = first?.reply;
      if (first !== undefined) this.reply(p.ctx, first.reply);
    }
    const lostSet = new Set(lost);
    return sends.filter((p) => !lostSet.has(p));
  }

  /** Repeats within the batch answer with whatever their first occurrence finally answered. */
  settleRepeats(reqs: readonly ReqCtx[]): void {
    for (const r of reqs) {
      if (!r.dupOf) continue;
      r.lines = [];
      if (r.dupOf.reply !== undefined) this.reply(r, r.dupOf.reply);
    }
  }
}
