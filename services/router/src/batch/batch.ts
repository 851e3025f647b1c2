/**
 * One batch of requests = one transaction. Requests run in arrival order against the batch's
 * view (view.ts: sessions and users read in bulk up front); the hot commands only buffer their
 * writes (writes.ts), flushed as one statement each; exactly-once SEND is exactly-once.ts.
 * Replies are released only after COMMIT: the caller publishes output().
 */
import type { Queryable } from "@pesan/shared/db";
import { withTag, type Request } from "@pesan/shared/protocol";
import { WITHHELD } from "@pesan/shared/bus";
import * as store from "../store.ts";
import { SendDedup, SendIdRaceError } from "./exactly-once.ts";
import { emptyPrepared, isGatewayNotice, parsedOf, DEDUP_WINDOW_MS, type CoreDeps, type CoreSettings, type Incoming, type Outgoing, type Prepared, type ReqCtx } from "./types.ts";
import { BatchView } from "./view.ts";
import { BatchWrites } from "./writes.ts";

export class Batch {
  readonly reqs: ReqCtx[];
  readonly now: Date;
  readonly deps: CoreDeps;
  /** The transaction, for the commands that read and write at once (logins, INBOX, ...). */
  readonly tx: Queryable;
  readonly prepared: Prepared;
  readonly view: BatchView;
  readonly once: SendDedup;
  readonly writes: BatchWrites;

  constructor(deps: CoreDeps, incoming: Incoming[], prepared: Prepared, tx: Queryable, now: Date, readIds = true) {
    this.deps = deps;
    this.prepared = prepared;
    this.tx = tx;
    this.now = now;
    this.view = new BatchView(tx, deps.settings, deps.onBoxFull);
    this.once = new SendDedup(tx, now, this.staleBefore(), (ctx, line) => this.reply(ctx, line), readIds);
    this.writes = new BatchWrites(tx, this.once);
    this.reqs = incoming.map((inc, index) => {
      if (isGatewayNotice(inc)) {
        if (inc.text.startsWith(WITHHELD)) this.writes.bufferWithheld(inc.text.slice(WITHHELD.length));
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

  /** Dedup rows older than this are past the retry window. */
  staleBefore(): Date {
    return new Date(this.now.getTime() - DEDUP_WINDOW_MS);
  }

  async prefetch(): Promise<void> {
    this.once.load(await this.view.prefetch(this.reqs, this.staleBefore()));
    await this.once.prefetchIds(this.reqs, (r) => this.view.cachedSessionAt(r.in.gateway, r.in.addr));
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

  /** The end of every batch: the buffered writes, the in-batch repeats' answers, the leases. */
  async finish(): Promise<void> {
    await this.writes.flush();
    this.once.settleRepeats(this.reqs);
    await this.touchLeases();
  }

  /** Any datagram renews its session's lease; written at most every touchAfterMs per session. */
  private async touchLeases(): Promise<void> {
    const touchAfter = Math.min(5000, this.settings.leaseMs / 10);
    const users = new Set<string>();
    for (const r of this.reqs) {
      // Only a datagram that acts in the session renews it: not a forged plain one at a proof
      // session's address, and not the gateway's own notices.
      const s = r.session ? this.view.cachedSessionAt(r.in.gateway, r.in.addr) : undefined;
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
  const durable = !incoming.every(isRepeatable);
  // The first try assumes tagged SENDs' ids free; a try that found one taken (SendIdRaceError)
  // is run again reading them (exactly-once.ts).
  let readIds = false;
  return deps.db.withTransaction(
    async (tx) => {
      const b = new Batch(deps, incoming, prepared, tx, now, readIds);
      await b.prefetch();
      try {
        await run(b);
      } catch (e) {
        if (e instanceof SendIdRaceError) readIds = true;
        throw e;
      }
      // Began without waiting for the WAL flush, but wrote what must not be lost (writes.ts).
      if (!durable && b.writes.needsDurable) await tx.query("SET LOCAL synchronous_commit TO on");
      return b.output();
    },
    { durable },
  );
}

/** Requests whose writes a crash may lose at no cost but a repetition (see isRepeatable). */
const REPEATABLE = new Set<Request["cmd"]>(["ACK", "LIVE", "PING"]);

/**
 * A batch of only these need not wait for its WAL flush (half the batches of a steady chat are
 * the receivers' ACKs): a lost ACK makes the message pushed again, with its id, which the
 * client recognises; a lost lease renewal is renewed by the next heartbeat. Anything else
 * (a SEND's OK, a login, the gateway's notices) waits, as every answer a client relies on must,
 * and so does such a batch once it writes more than that (BatchWrites.needsDurable).
 */
function isRepeatable(inc: Incoming): boolean {
  if (isGatewayNotice(inc)) return false;
  const p = parsedOf(inc);
  return p.ok && REPEATABLE.has(p.req.cmd);
}
