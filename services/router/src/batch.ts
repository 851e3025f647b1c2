/**
 * One batch of requests = one transaction. Requests run in arrival order against a per-batch
 * view of sessions and users that is fetched in bulk up front; the hot commands (SEND, ACK,
 * heartbeats) only buffer their writes, which are flushed as one statement each before any
 * command that reads messages and at the end. Replies are released only after COMMIT.
 */
import type { Db, Queryable } from "@pesan/shared/db";
import { parseText, withTag, type Parsed, type PlainSessionPolicy, type Request } from "@pesan/shared/protocol";
import { WITHHELD, type OutboundLine } from "@pesan/shared/bus";
import { enqueueFrames, type OutgoingFrame } from "@pesan/shared/replication";
import * as store from "./store.ts";
import type { NewMessage, Session } from "./store.ts";

export interface CoreSettings {
  cluster: string;
  publicAddress: string;
  quota: number;
  leaseMs: number;
  resendBaseMs: number;
  inboxLimit: number;
  /** Where sessions may act without proofs (PLAIN_SESSIONS). */
  plainSessions: PlainSessionPolicy;
  /** Most sessions this cluster holds at the addresses of one IP; 0 for no limit. */
  sessionsPerIp: number;
  /** Most undelivered messages one recipient may have (BOX_LIMIT); 0 for no limit. */
  boxLimit: number;
}

export interface CoreDeps {
  db: Db;
  clock: () => Date;
  settings: CoreSettings;
  /** Counts a SEND refused with ERR BOX_FULL (the router's metric). */
  onBoxFull?: () => void;
}

/** One datagram as the router received it. */
export interface Incoming {
  gateway: string;
  addr: string;
  reqId: number;
  text: string;
  /** Unique, deterministic id for a message this request may create: a replayed entry reuses it. */
  msgId: string;
  /** The id of the proof key the gateway verified on this datagram, if it carried a valid proof. */
  proof?: string;
  /** text parsed, once per datagram (parsedOf): the password split, the batch and the metrics all need it. */
  parsed?: Parsed;
}

/** The request in inc, parsed on first use and kept on it. */
export function parsedOf(inc: Incoming): Parsed {
  return (inc.parsed ??= parseText(inc.text));
}

/** A line for a client, through the gateway that holds its address. */
export interface Outgoing {
  gateway: string;
  line: OutboundLine;
}

export const DEDUP_WINDOW_MS = 60_000;

/**
 * Password work done before the transaction, keyed by request index. The batches of the stream
 * never hash: password requests run in small batches of their own, off the hot path, after
 * their hashing (password-work.ts), and bring their results here.
 */
export interface Prepared {
  newHashes: Map<number, string>;
  /** lost: the password is that of an account of this name that lost a registration race. */
  loginVerdicts: Map<number, { ok: boolean; hash: string | undefined; lost?: boolean }>;
  /** The session's user and the hash the password was checked against. */
  unregisterVerdicts: Map<number, { ok: boolean; user: string; hash: string | undefined }>;
}

export function emptyPrepared(): Prepared {
  return { newHashes: new Map(), loginVerdicts: new Map(), unregisterVerdicts: new Map() };
}

export interface ReqCtx {
  index: number;
  in: Incoming;
  tag: string | undefined;
  req: Request | undefined;
  lines: Outgoing[];
  /** The untagged final reply line, remembered for exactly-once SEND. */
  reply?: string;
  /** Set when this SEND repeats a (session, tag) seen earlier in the same batch. */
  dupOf?: ReqCtx;
  /** The session this request acts in (found at its address, and proven where it must be). */
  session?: Session;
}

interface PendingSend {
  ctx: ReqCtx;
  msg: NewMessage;
  token: string | undefined;
  /** A frame for the other clusters, written only if the message is. */
  frame: Frame | undefined;
}

/** A peer_outbox row buffered by the batch (docs/peer-protocol.md), typed by its kind. */
export type Frame = OutgoingFrame;

const endpointKey = (gateway: string, addr: string): string => `${gateway}\u0000${addr}`;
const hasEndpoint = (s: Session): boolean => s.gateway !== "";

export class Batch {
  readonly reqs: ReqCtx[];
  readonly now: Date;
  readonly deps: CoreDeps;
  readonly tx: Queryable;

  private readonly userExists = new Map<string, boolean>();
  private readonly sessByUser = new Map<string, Session | null>();
  private readonly sessByEndpoint = new Map<string, string | null>();
  private readonly seenTags = new Map<string, ReqCtx>();
  private freshReplies = new Map<string, string>();
  private pendingSends: PendingSend[] = [];
  private pendingAcks: Array<{ id: string; recipient: string }> = [];
  private pendingFrames: Frame[] = [];
  private pendingWithheld: Array<{ id: string; gateway: string; addr: string }> = [];
  private pendingProven: Array<{ user: string; keyId: string }> = [];
  private afterFlushes: Array<() => Promise<void>> = [];
  private linkedState: boolean | undefined;
  /** Undelivered messages per SEND target (capped at boxLimit), plus what this batch added. */
  private readonly boxes = new Map<string, number>();
  private upClusters: Set<string> | undefined;
  readonly prepared: Prepared;

  constructor(deps: CoreDeps, incoming: Incoming[], prepared: Prepared, tx: Queryable, now: Date) {
    this.deps = deps;
    this.prepared = prepared;
    this.tx = tx;
    this.now = now;
    this.reqs = incoming.map((inc, index) => {
      // The gateway's own notices (a NUL first, which no client datagram has).
      if (inc.reqId === 0 && inc.text.charCodeAt(0) === 0) {
        if (inc.text.startsWith(WITHHELD)) this.pendingWithheld.push({ id: inc.text.slice(WITHHELD.length), gateway: inc.gateway, addr: inc.addr });
        return { index, in: inc, tag: undefined, req: undefined, lines: [] };
      }
      const p = parsedOf(inc);
      const ctx: ReqCtx = { index, in: inc, tag: p.tag, req: p.ok ? p.req : undefined, lines: [] };
      if (!p.ok) this.reply(ctx, `ERR ${p.code} ${p.message}`);
      return ctx;
    });
  }

  get settings(): CoreSettings {
    return this.deps.settings;
  }

  /**
   * Bulk reads that serve most of the batch, in one round trip (store.batchView): the sessions
   * at every sender's address, every SEND target with its session and box size, and the stored
   * replies of tagged SENDs (a retry is answered with its first reply).
   */
  async prefetch(): Promise<void> {
    const endpoints = new Map<string, { gateway: string; addr: string }>();
    for (const r of this.reqs) endpoints.set(endpointKey(r.in.gateway, r.in.addr), { gateway: r.in.gateway, addr: r.in.addr });
    const targets = new Set<string>();
    const tagged: Array<{ gateway: string; addr: string; tag: string }> = [];
    for (const r of this.reqs) {
      if (r.req?.cmd !== "SEND") continue;
      targets.add(r.req.to);
      if (r.tag !== undefined) tagged.push({ gateway: r.in.gateway, addr: r.in.addr, tag: r.tag });
    }
    if (endpoints.size === 0) return;
    const view = await store.batchView(this.tx, { endpoints: [...endpoints.values()], targets: [...targets], boxLimit: this.settings.boxLimit, tagged, staleBefore: this.staleBefore() });
    for (const k of endpoints.keys()) this.sessByEndpoint.set(k, null);
    for (const s of view.sessions) this.setSession(s);
    for (const n of targets) {
      if (this.userExists.has(n)) continue;
      this.userExists.set(n, false);
      if (!this.sessByUser.has(n)) this.sessByUser.set(n, null);
    }
    for (const u of view.users) {
      this.userExists.set(u.name, true);
      // A target that also sent in this batch already has its session from its endpoint.
      if (u.session && !this.sessByUser.get(u.name)) this.setSession(u.session);
    }
    for (const [name, n] of view.boxes) this.boxes.set(name, n);
    this.freshReplies = view.replies;
  }

  staleBefore(): Date {
    return new Date(this.now.getTime() - DEDUP_WINDOW_MS);
  }

  // --- the per-batch view -------------------------------------------------------------------

  private async loadUsers(names: string[]): Promise<void> {
    const unknown = names.filter((n) => !this.userExists.has(n));
    if (unknown.length === 0) return;
    const found = await store.usersWithSessions(this.tx, unknown);
    for (const n of unknown) {
      this.userExists.set(n, false);
      if (!this.sessByUser.has(n)) this.sessByUser.set(n, null);
    }
    for (const f of found) {
      this.userExists.set(f.name, true);
      if (f.session) this.setSession(f.session);
    }
  }

  async userExistsNamed(name: string): Promise<boolean> {
    await this.loadUsers([name]);
    return this.userExists.get(name) === true;
  }

  /** The user's session as this batch knows it (loading it if needed); undefined when offline. */
  async sessionOfUser(name: string): Promise<Session | undefined> {
    if (!this.sessByUser.has(name)) await this.loadUsers([name]);
    return this.sessByUser.get(name) ?? undefined;
  }

  private sessionAtCached(gateway: string, addr: string): Session | undefined {
    const user = this.sessByEndpoint.get(endpointKey(gateway, addr));
    return user ? (this.sessByUser.get(user) ?? undefined) : undefined;
  }

  async sessionAt(gateway: string, addr: string): Promise<Session | undefined> {
    const key = endpointKey(gateway, addr);
    if (!this.sessByEndpoint.has(key)) {
      this.sessByEndpoint.set(key, null);
      const s = await store.sessionAt(this.tx, gateway, addr);
      if (s) this.setSession(s);
    }
    return this.sessionAtCached(gateway, addr);
  }

  setSession(s: Session): void {
    const old = this.sessByUser.get(s.user);
    if (old && hasEndpoint(old)) this.sessByEndpoint.set(endpointKey(old.gateway, old.addr), null);
    this.sessByUser.set(s.user, s);
    this.userExists.set(s.user, true);
    // Another cluster's session has no endpoint here (gateway = addr = '', shared by all of them).
    if (!hasEndpoint(s)) return;
    const key = endpointKey(s.gateway, s.addr);
    const other = this.sessByEndpoint.get(key);
    if (other && other !== s.user) this.sessByUser.set(other, null);
    this.sessByEndpoint.set(key, s.user);
  }

  removeSession(user: string): void {
    const s = this.sessByUser.get(user);
    if (s && hasEndpoint(s)) this.sessByEndpoint.set(endpointKey(s.gateway, s.addr), null);
    this.sessByUser.set(user, null);
  }

  forgetUser(user: string): void {
    this.removeSession(user);
    this.userExists.set(user, false);
  }

  markRegistered(user: string): void {
    this.userExists.set(user, true);
    if (!this.sessByUser.has(user)) this.sessByUser.set(user, null);
  }

  // --- output -------------------------------------------------------------------------------

  /** A line answering ctx (tagged with its tag). */
  reply(ctx: ReqCtx, line: string): void {
    this.replyTagged(ctx, withTag(ctx.tag, line));
  }

  /** A line answering ctx that already carries its tag (formatOnline sizes lines with it). */
  replyTagged(ctx: ReqCtx, line: string): void {
    ctx.lines.push({ gateway: ctx.in.gateway, line: [ctx.in.addr, line, ctx.in.reqId] });
  }

  /** An unsolicited line to some session, queued in the order of ctx's effects. */
  push(ctx: ReqCtx, to: { gateway: string; addr: string }, line: string): void {
    ctx.lines.push({ gateway: to.gateway, line: [to.addr, line, 0] });
  }

  output(): Outgoing[] {
    const out: Outgoing[] = [];
    for (const r of this.reqs) out.push(...r.lines);
    return out;
  }

  // --- buffered writes ----------------------------------------------------------------------

  /** Returns the stored first reply when this SEND repeats a tag; undefined to go ahead. */
  repeatedSend(ctx: ReqCtx, s: Session): string | "in-batch" | undefined {
    if (ctx.tag === undefined) return undefined;
    const key = `${s.token} ${ctx.tag}`;
    const stored = this.freshReplies.get(key);
    if (stored !== undefined) return stored;
    const first = this.seenTags.get(key);
    if (first) {
      ctx.dupOf = first;
      return "in-batch";
    }
    this.seenTags.set(key, ctx);
    return undefined;
  }

  /**
   * Whether recipient's box takes one more undelivered message (BOX_LIMIT); if so it is counted.
   * A soft bound: routers count their own batches, so two batching at once may both take the
   * last place (at most one batch over). Counted when the batch began, plus its own sends.
   */
  async boxTakes(recipient: string): Promise<boolean> {
    const limit = this.settings.boxLimit;
    if (limit <= 0) return true;
    let n = this.boxes.get(recipient);
    if (n === undefined) n = (await store.boxSizes(this.tx, [recipient], limit)).get(recipient) ?? 0;
    if (n >= limit) {
      this.deps.onBoxFull?.();
      return false;
    }
    this.boxes.set(recipient, n + 1);
    return true;
  }

  bufferSend(ctx: ReqCtx, msg: NewMessage, token: string | undefined, frame?: Frame): void {
    this.pendingSends.push({ ctx, msg, token, frame });
  }

  /** A frame for every peer, written with the batch's other frames (one statement per flush). */
  bufferFrame(frame: Frame): void {
    this.pendingFrames.push(frame);
  }

  /** Whether this cluster is linked to others (peer-sync ran here); asked once per batch. */
  async linked(): Promise<boolean> {
    this.linkedState ??= await store.isLinked(this.tx);
    return this.linkedState;
  }

  /** Whether another cluster is UP as peer-sync last saw it (server_list); read once per batch. */
  async clusterUp(name: string): Promise<boolean> {
    this.upClusters ??= new Set((await store.servers(this.tx)).filter((x) => x.active && !x.isSelf).map((x) => x.name));
    return this.upClusters.has(name);
  }

  bufferAck(id: string, recipient: string): void {
    this.pendingAcks.push({ id, recipient });
  }

  /** The session's first valid proof since its key was issued (written with the batch). */
  bufferProven(s: Session): void {
    s.proven = true;
    this.pendingProven.push({ user: s.user, keyId: s.proofKeyId });
  }

  /** Writes what the fast commands buffered. Must run before anything reads messages. */
  async flush(): Promise<void> {
    const sends = this.pendingSends;
    const acks = this.pendingAcks;
    const frames = this.pendingFrames;
    const withheld = this.pendingWithheld;
    const proven = this.pendingProven;
    this.pendingSends = [];
    this.pendingAcks = [];
    this.pendingFrames = [];
    this.pendingWithheld = [];
    this.pendingProven = [];
    await store.markProven(this.tx, proven);
    if (sends.length > 0) {
      const dedupOf = (p: PendingSend) => (p.ctx.tag !== undefined && p.token !== undefined ? { token: p.token, tag: p.ctx.tag, reply: p.ctx.reply! } : undefined);
      // Claiming the tags and storing the messages is one statement (one round trip).
      const owned = await store.storeSends(
        this.tx,
        sends.map((p) => ({ msg: p.msg, dedup: dedupOf(p) })),
        this.now,
        this.staleBefore(),
      );
      // A tag another router holds means this SEND is the client's retry racing the first try:
      // it was not stored and is not delivered; it gets the first reply once that one is committed.
      const lost = sends.filter((p) => dedupOf(p) !== undefined && !owned.has(`${p.token} ${p.ctx.tag}`));
      if (lost.length > 0) {
        const replies = await store.sendReplies(this.tx, lost.map((p) => ({ token: p.token!, tag: p.ctx.tag! })), this.staleBefore());
        for (const p of lost) {
          const first = replies.get(`${p.token} ${p.ctx.tag}`);
          // Our own entry replayed (same message id): its reply and push stand as computed.
          if (first?.split(" ")[2] === p.msg.id) continue;
          p.ctx.lines = [];
          p.ctx.reply = first;
          if (first !== undefined) this.reply(p.ctx, first);
        }
      }
      const lostSet = new Set(lost);
      for (const p of sends) if (!lostSet.has(p) && p.frame) frames.push(p.frame);
    }
    await enqueueFrames(this.tx, frames);
    await store.ackMessages(this.tx, acks);
    await store.undeliverWithheld(this.tx, withheld);
    const after = this.afterFlushes;
    this.afterFlushes = [];
    for (const fn of after) await fn();
  }

  /** Work that reads messages, so it must see this batch's writes: runs at the next flush. */
  afterFlush(fn: () => Promise<void>): void {
    this.afterFlushes.push(fn);
  }

  /** Repeats within the batch answer with whatever their first occurrence finally answered. */
  settleInBatchRepeats(): void {
    for (const r of this.reqs) {
      if (!r.dupOf) continue;
      r.lines = [];
      if (r.dupOf.reply !== undefined) this.reply(r, r.dupOf.reply);
    }
  }

  /** Any datagram renews its session's lease; written at most every touchAfterMs per session. */
  async touchLeases(): Promise<void> {
    const touchAfter = Math.min(5000, this.settings.leaseMs / 10);
    const users = new Set<string>();
    for (const r of this.reqs) {
      // Only a datagram that acts in the session renews it: not a forged plain one at a proof
      // session's address, and not the gateway's own notices.
      const s = r.session ? this.sessionAtCached(r.in.gateway, r.in.addr) : undefined;
      if (s && this.now.getTime() - s.lastHeard.getTime() >= touchAfter) {
        users.add(s.user);
        s.lastHeard = this.now;
      }
    }
    await store.touchSessions(this.tx, [...users], this.now);
  }
}

/**
 * Runs a batch in one transaction (retried whole on deadlock, with a fresh view each time),
 * with the password work `prepared` for it. Returns the lines to send, which the caller
 * publishes after this resolves.
 */
export async function processBatch(deps: CoreDeps, incoming: Incoming[], run: (b: Batch) => Promise<void>, prepared: Prepared = emptyPrepared()): Promise<Outgoing[]> {
  const now = deps.clock();
  return deps.db.withTransaction(
    async (tx) => {
      const b = new Batch(deps, incoming, prepared, tx, now);
      await b.prefetch();
      await run(b);
      return b.output();
    },
    { durable: !incoming.every(isRepeatable) },
  );
}

/** Requests whose writes a crash may lose at no cost but a repetition (see isRepeatable). */
const REPEATABLE = new Set<Request["cmd"]>(["ACK", "LIVE", "PING"]);

/**
 * A batch of only these need not wait for its WAL flush (half the batches of a steady chat are
 * the receivers' ACKs): a lost ACK makes the message pushed again, with its id, which the
 * client recognises; a lost lease renewal is renewed by the next heartbeat. Anything else
 * (a SEND's OK, a login, the gateway's notices) waits, as every answer a client relies on must.
 */
function isRepeatable(inc: Incoming): boolean {
  if (inc.reqId === 0 && inc.text.charCodeAt(0) === 0) return false;
  const p = parsedOf(inc);
  return p.ok && REPEATABLE.has(p.req.cmd);
}
