/**
 * Exactly-once SEND (docs/protocol.md "Tags"): a SEND repeating a (session, tag) pair within
 * the 60 s window is not stored again; it is answered with the first try's reply. Pairs are
 * claimed in send_dedup in the same statement that stores the messages (store.storeSends), so
 * two routers racing on a client's retry store it once. The claim keeps the id of the stream
 * entry that made it, by which a replay of the very same entry (its router died between COMMIT
 * and publishing) is told from a client's retry.
 *
 * Across clusters: send_dedup is this cluster's, but a client whose cluster died before
 * answering resends the SEND (same tag) where it RESUMEs. So a tagged SEND's message id is not
 * the stream entry's but the session's and tag's (sessionSendId, the same on every cluster): a
 * message of that id here (replicated before the first cluster died) with the same sender,
 * recipient and text, sent within the window, is that send: the retry gets `OK SENT <id>` and
 * nothing is stored or pushed again. One not here yet is stored under the same id, so the first
 * cluster's message.new, when it comes back, finds it (peer-sync's apply is idempotent by id).
 * An id taken by anything else (an older send of a reused tag, another text, a deleted message)
 * moves the send to the tag's next generation.
 *
 * The read of the candidate ids takes no lock, so peer-sync may commit a message at the id
 * chosen before our insert (a peer's copy of this very send, or a lying peer's other text
 * under the session's next id). The insert then does nothing (ON CONFLICT (id) DO NOTHING),
 * and the batch, which has answered, pushed and framed the send as stored, must not commit:
 * storeSends throws SendIdRaceError, a serialization failure, and the batch runs again from
 * its first read, which sees the row: the same send is answered as `existing`, another moves
 * to the next generation, both by the one rule (idVerdict). Rather than advisory locks on
 * every candidate id in every batch (and in peer-sync): the race is rare, the retry costs a
 * batch only when it happens, and nothing is added to the hot path.
 *
 * The same retry makes the read itself unneeded on the first try: an id is found taken only
 * when a client retries across clusters or reuses a tag, so a batch first assumes every
 * candidate id free (generation 0, no query; `readIds` false), and only its re-run after a
 * SendIdRaceError reads them. Measured on the bench (window 1), the read on every batch cost
 * a fifth of the throughput; the re-run costs one batch per taken id.
 */
import type { Queryable } from "@pesan/shared/db";
import { isSameSend, isSessionSendId, sessionSendId } from "@pesan/shared/protocol";
import * as store from "../store.ts";
import { dedupKey as key } from "../store.ts";
import type { NewMessage, Session, StoredReply, TakenId } from "../store.ts";
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

/** Generations of a tag's id asked about in one query; a tag is seldom reused in one session. */
const GENERATIONS_PER_QUERY = 4;
/** After this many reuses of one tag in one session, a SEND takes its entry's id (no cross-cluster dedup). */
const MAX_GENERATIONS = 64;

/** What a tagged SEND finds at one of its candidate ids. */
export type IdVerdict = "free" | "same" | "taken";

/**
 * `same`: the message there is this send, stored by another cluster (or by this one before a
 * crash) within the window. `free`: nothing there, the send takes the id. `taken`: something
 * else (another text or recipient, an older send of a reused tag, a deleted message): the next
 * generation. Deleted counts as taken, not as the same send: a tombstone any peer may write
 * must never make a live send vanish.
 */
export function idVerdict(at: TakenId | undefined, send: { sender: string; recipient: string; body: string }, staleBefore: Date): IdVerdict {
  if (at === undefined) return "free";
  const m = at.message;
  if (m === undefined) return "taken";
  return isSameSend(m, send) && m.sentAt.getTime() >= staleBefore.getTime() ? "same" : "taken";
}

/**
 * A message another transaction committed at the id a tagged SEND took, between the batch's
 * read of the id and its insert. SQLSTATE 40001 (serialization failure): Db.withTransaction
 * runs the batch again, and the router's stream consumer retries it past that (transient).
 */
export class SendIdRaceError extends Error {
  readonly code = "40001";
  constructor(ids: string[]) {
    super(`tagged SEND id(s) taken by a concurrent commit, batch to run again: ${ids.join(", ")}`);
    this.name = "SendIdRaceError";
  }
}

/** The id a SEND gets; `existing` when its message is already stored (a retry after failover). */
export interface SendId {
  id: string;
  existing?: { delivered: boolean };
}

export class SendDedup {
  private readonly tx: Queryable;
  private readonly staleBefore: Date;
  private readonly now: Date;
  private readonly reply: (ctx: ReqCtx, line: string) => void;
  /** Stored first replies of this batch's tagged SENDs (read with the batch's view). */
  private fresh = new Map<string, StoredReply>();
  /** The first SEND of each pair within this batch. */
  private readonly seen = new Map<string, ReqCtx>();
  /** What the candidate ids of tagged SENDs hold here (null: nothing), as read in this batch. */
  private readonly taken = new Map<string, TakenId | null>();
  /** Whether candidate ids are read (a re-run after SendIdRaceError) or assumed free (see above). */
  private readonly readIds: boolean;

  constructor(tx: Queryable, now: Date, staleBefore: Date, reply: (ctx: ReqCtx, line: string) => void, readIds = true) {
    this.tx = tx;
    this.now = now;
    this.staleBefore = staleBefore;
    this.reply = reply;
    this.readIds = readIds;
  }

  /** The first replies the batch's prefetch found (BatchView.prefetch). */
  load(replies: Map<string, StoredReply>): void {
    this.fresh = replies;
  }

  /**
   * Reads, in one query for the batch, what the first candidate ids of its tagged SENDs hold,
   * for the senders whose session the prefetch found (sessionAt); sendId asks for the rest.
   */
  async prefetchIds(reqs: readonly ReqCtx[], sessionAt: (ctx: ReqCtx) => Session | undefined): Promise<void> {
    if (!this.readIds) return;
    const ids: string[] = [];
    for (const r of reqs) {
      if (r.req?.cmd !== "SEND" || r.tag === undefined) continue;
      const s = sessionAt(r);
      if (s === undefined || this.fresh.has(key(s.token, r.tag))) continue;
      for (let g = 0; g < GENERATIONS_PER_QUERY; g++) ids.push(sessionSendId(s.token, r.tag, g));
    }
    await this.read(ids);
  }

  private async read(ids: string[]): Promise<void> {
    const missing = ids.filter((id) => !this.taken.has(id));
    if (missing.length === 0) return;
    // Assumed free: the insert finds out, and the re-run reads (SendIdRaceError).
    if (!this.readIds) {
      for (const id of missing) this.taken.set(id, null);
      return;
    }
    const found = await store.takenIds(this.tx, missing);
    for (const id of missing) this.taken.set(id, found.get(id) ?? null);
  }

  /**
   * The message id of a SEND that is not a repeat (repeated() said so): the stream entry's for
   * an untagged one; for a tagged one its session's and tag's first generation that is free or
   * holds this very send (then `existing`: store and push nothing, answer with the id).
   */
  async sendId(ctx: ReqCtx, s: Session, to: string, body: string): Promise<SendId> {
    if (ctx.tag === undefined) return { id: ctx.in.msgId };
    const send = { sender: s.user, recipient: to, body };
    for (let g0 = 0; g0 < MAX_GENERATIONS; g0 += GENERATIONS_PER_QUERY) {
      const ids = Array.from({ length: GENERATIONS_PER_QUERY }, (_, i) => sessionSendId(s.token, ctx.tag!, g0 + i));
      await this.read(ids);
      for (const id of ids) {
        const at = this.taken.get(id) ?? undefined;
        const v = idVerdict(at, send, this.staleBefore);
        if (v === "taken") continue;
        // Taken from now on in this batch: another SEND (another tag's) never gets it.
        if (v === "free") this.taken.set(id, { id, message: { ...send, sentAt: this.now, delivered: false } });
        return v === "same" ? { id, existing: { delivered: at!.message!.delivered } } : { id };
      }
    }
    return { id: ctx.in.msgId };
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
   * Throws SendIdRaceError when a claimed tagged SEND's message was not inserted (see above).
   */
  async storeSends(sends: PendingSend[]): Promise<PendingSend[]> {
    if (sends.length === 0) return [];
    const dedupOf = (p: PendingSend) => (p.ctx.tag !== undefined && p.token !== undefined ? { token: p.token, tag: p.ctx.tag, reply: p.ctx.reply!, entry: p.ctx.in.msgId } : undefined);
    const { claimed: owned, inserted } = await store.storeSends(
      this.tx,
      sends.map((p) => ({ msg: p.msg, dedup: dedupOf(p) })),
      this.now,
      this.staleBefore,
    );
    // Only ids of tagged SENDs: an untagged one's (its stream entry's) already there is its own
    // entry replayed, which ON CONFLICT DO NOTHING is for.
    const raced = sends.filter((p) => dedupOf(p) !== undefined && owned.has(key(p.token!, p.ctx.tag!)) && isSessionSendId(p.msg.id) && !inserted.has(p.msg.id));
    if (raced.length > 0) throw new SendIdRaceError(raced.map((p) => p.msg.id));
    const lost = sends.filter((p) => dedupOf(p) !== undefined && !owned.has(key(p.token!, p.ctx.tag!)));
    if (lost.length === 0) return sends;
    const replies = await store.sendReplies(this.tx, lost.map((p) => ({ token: p.token!, tag: p.ctx.tag! })), this.staleBefore);
    for (const p of lost) {
      const first = replies.get(key(p.token!, p.ctx.tag!));
      // Our own entry replayed (the claim is its): its reply and push stand as computed. A retry
      // racing its first try has the same message id (the session's and tag's) but another entry.
      if (first?.entry === p.ctx.in.msgId) continue;
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
