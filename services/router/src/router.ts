/**
 * The router: consumes the gateways' stream as one of a consumer group, runs each batch in a
 * transaction, publishes replies and pushes to each gateway's out stream, and only then lets
 * the consumer acknowledge. Background tickers do the time-driven work (resends, lease expiry).
 */
import type { Bus, BusEntry, Consumer, HeldEntries } from "@pesan/shared/bus";
import { inStreams, isTransientBusError, ROUTER_GROUP, decodeInbound, encodeOutbound, outStream, type OutboundLine } from "@pesan/shared/bus";
import { CHANNELS, isTransientDbError, type Db, type Listener } from "@pesan/shared/db";
import type { Logger, Registry } from "@pesan/shared/observability";
import { Loop, type Lifecycle } from "@pesan/shared/runtime";
import { formatMsg } from "@pesan/shared/protocol";
import { enqueueFrame, handOverUndelivered, sessionDownPayload } from "@pesan/shared/replication";
import { parsedOf, processBatch, type CoreSettings, type Incoming, type Outgoing } from "./batch/index.ts";
import { runCommands } from "./commands/index.ts";
import { createRouterMetrics, type RouterMetrics } from "./metrics.ts";
import { PasswordChecker } from "./passwords.ts";
import { PasswordWork } from "./password-work.ts";
import { Retention, type RetentionSettings } from "./retention.ts";
import * as store from "./store.ts";

export interface RouterOptions extends CoreSettings {
  routerId: string;
  /** BUS_SHARDS: the `in` stream's shards; the router consumes every one (one blocking read each). Default 1. */
  busShards?: number;
  batchSize: number;
  blockMs: number;
  claimIdleMs: number;
  resendMaxAttempts: number;
  resendMaxDelayMs: number;
  passwordHashCost: number;
  /** Hashes at once (PASSWORD_HASH_CONCURRENCY). */
  passwordConcurrency: number;
  /** Password jobs waiting at most (PASSWORD_QUEUE_MAX). */
  passwordQueueMax: number;
  /** A password job not started within this is answered ERR UNAVAILABLE (PASSWORD_QUEUE_WAIT_MS). */
  passwordQueueWaitMs: number;
  /** Proxies hiding client IPs (PROXY_IPS): their clients are told apart by port. */
  proxyIps: string[];
  /** PROBE_PASSWORD: the password REGISTER of a probe account's name needs; undefined: refused. */
  probePassword?: string | undefined;
  peers: Array<{ name: string; address: string; proximity: number }>;
  /** Configuration problems that do not stop the router (a deprecated setting): logged at start. */
  configWarnings?: string[];
  /** Bounded storage: what the retention sweep deletes, and when. */
  retention: RetentionSettings;
}

export interface RouterDeps {
  db: Db;
  bus: Bus;
  logger: Logger;
  registry: Registry;
  clock?: () => Date;
}

/**
 * How often the lines peer-sync leaves in pending_pushes are published (BYE replaced, ALL from
 * other clusters) when no NOTIFY woke us first.
 */
const PEER_PUSH_POLL_MS = 100;
/** A gateway counts as live for this long after its last stream entry (clients' heartbeats keep it fresh). */
const GATEWAY_SEEN_MS = 60_000;
/** Rows a background round takes at once; a full round runs again at once. */
const ROUND_LIMIT = 500;

/** Out streams hold replies for live clients; a gateway gone for good must not grow one forever. */
const OUT_MAX_LEN = 10_000;

/**
 * Message ids: cluster, then the stream entry id and the request's place in it (sortable). With
 * BUS_SHARDS > 1 the `in` shard follows (`.<shard>`): entry ids are unique per stream only, and
 * two shards may hand out the same one in the same millisecond.
 */
export function messageId(cluster: string, entryId: string, index: number, shard?: number): string {
  const [ms, seq] = entryId.split("-");
  const id = `${cluster}:${Number(ms).toString(36)}-${Number(seq ?? 0).toString(36).padStart(3, "0")}-${index.toString(36).padStart(3, "0")}`;
  return shard === undefined ? id : `${id}.${shard.toString(36)}`;
}

export class Router implements Lifecycle {
  readonly name = "router";
  private readonly deps: RouterDeps;
  private readonly opts: RouterOptions;
  private readonly clock: () => Date;
  private readonly metrics: RouterMetrics;
  private readonly passwords: PasswordChecker;
  private readonly passwordWork: PasswordWork;
  /** One per `in` shard (a blocking XREADGROUP cannot span Redis Cluster slots). */
  private readonly consumers: Consumer[];
  private readonly tickers: Loop[];
  private readonly resendLoop: Loop;
  private readonly peerPushLoop: Loop;
  private readonly retention: Retention;
  private wake: Listener | undefined;
  /** Gateways whose entries we consumed, and when last: a line for "any gateway" goes out through the latest. */
  private readonly gatewaysSeen = new Map<string, number>();
  private started = false;
  private closed = false;

  constructor(deps: RouterDeps, opts: RouterOptions) {
    this.deps = deps;
    this.opts = opts;
    this.clock = deps.clock ?? (() => new Date());
    this.metrics = createRouterMetrics(deps.registry);
    this.passwords = new PasswordChecker(opts.passwordHashCost);
    this.passwordWork = new PasswordWork(
      {
        core: this.core(),
        db: deps.db,
        passwords: this.passwords,
        runCommands,
        publish: (out) => this.publish(out),
        logger: deps.logger,
        registry: deps.registry,
        now: () => this.clock().getTime(),
      },
      { concurrency: opts.passwordConcurrency, maxQueued: opts.passwordQueueMax, maxWaitMs: opts.passwordQueueWaitMs, proxyIps: new Set(opts.proxyIps), probePassword: opts.probePassword },
    );
    const shards = opts.busShards ?? 1;
    this.consumers = inStreams(shards).map((stream, shard) =>
      deps.bus.consumer(
        {
          stream: deps.bus.key(stream),
          group: ROUTER_GROUP,
          consumer: opts.routerId,
          count: opts.batchSize,
          blockMs: opts.blockMs,
          claimIdleMs: opts.claimIdleMs,
          deleteOnAck: true,
          isTransient: (e) => isTransientDbError(e) || isTransientBusError(e),
        },
        (entries) => this.handle(entries, shards === 1 ? undefined : shard),
        deps.logger,
      ),
    );
    this.retention = new Retention({ db: deps.db, clock: this.clock, logger: deps.logger, metrics: this.metrics }, opts.retention);
    const lease = opts.leaseMs;
    this.resendLoop = new Loop("resend", Math.max(20, Math.min(100, opts.resendBaseMs / 2)), () => this.resend(), deps.logger);
    this.peerPushLoop = new Loop("peer-pushes", PEER_PUSH_POLL_MS, () => this.pushFromPeers(), deps.logger);
    this.tickers = [
      this.resendLoop,
      new Loop("stranded", 1000, () => this.pushStranded(), deps.logger),
      new Loop("expiry", Math.max(200, Math.min(5000, lease / 4)), () => this.expire(), deps.logger),
      this.peerPushLoop,
      new Loop("self", 10_000, () => this.announceSelf(), deps.logger),
    ];
  }

  private core() {
    return {
      db: this.deps.db,
      clock: this.clock,
      settings: this.opts,
      onBoxFull: () => this.metrics.boxFull.inc(),
    };
  }

  async start(): Promise<void> {
    for (const w of this.opts.configWarnings ?? []) this.deps.logger.warn(w);
    await this.announceSelf();
    await store.seedServers(this.deps.db, this.opts.peers);
    await this.passwordWork.start();
    for (const c of this.consumers) await c.start();
    for (const t of this.tickers) await t.start();
    await this.retention.start();
    // peer-sync's commits of pushes for our clients (copies due now, pending_pushes) wake us.
    this.wake = await this.deps.db.listen(CHANNELS.pushes, () => {
      this.resendLoop.kick();
      this.peerPushLoop.kick();
    });
    this.started = true;
    this.deps.logger.info({ routerId: this.opts.routerId, cluster: this.opts.cluster }, "router consuming");
  }

  async close(): Promise<void> {
    if (this.closed || !this.started) return;
    this.closed = true;
    await this.wake?.close();
    // Waiting password jobs stay pending in the stream for the others; running ones finish.
    await this.passwordWork.close();
    // Stop taking work, finish the batch in hand (it is acked or left pending for the others).
    await Promise.all(this.consumers.map((c) => c.close()));
    await Promise.all(this.tickers.map((t) => t.close()));
    await this.retention.close();
  }

  /**
   * One stream batch. Resolving means: committed and published, so the entries may be acked,
   * except those holding password requests, acked once those are done too.
   */
  private async handle(entries: BusEntry[], shard: number | undefined): Promise<void | HeldEntries> {
    const started = process.hrtime.bigint();
    const incoming: Incoming[] = [];
    const entryOf: string[] = [];
    for (const e of entries) {
      const d = decodeInbound(e.payload);
      if (!d) {
        this.deps.logger.warn({ entry: e.id }, "malformed stream entry skipped");
        continue;
      }
      d.r.forEach(([reqId, addr, text, proof], i) => {
        const inc: Incoming = { gateway: d.g, addr, reqId, text, msgId: messageId(this.opts.cluster, e.id, i, shard) };
        if (proof !== undefined) inc.proof = proof;
        incoming.push(inc);
        entryOf.push(e.id);
      });
      this.gatewaysSeen.set(d.g, Date.now());
    }
    if (incoming.length === 0) return;
    const split = await this.passwordWork.split(incoming);
    const out = split.batch.length > 0 ? await processBatch(this.core(), split.batch, runCommands) : [];
    await this.publish([...out, ...split.replies]);
    this.metrics.batchSize.observe(incoming.length);
    this.metrics.batchSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    for (const inc of incoming) if (inc.reqId !== 0) this.metrics.requests.inc({ command: commandLabel(inc) });
    return { held: split.held.map((h) => ({ id: entryOf[h.index]!, done: h.done })) };
  }

  private async publish(out: Outgoing[]): Promise<void> {
    const byGateway = new Map<string, OutboundLine[]>();
    for (const o of out) {
      let list = byGateway.get(o.gateway);
      if (!list) byGateway.set(o.gateway, (list = []));
      list.push(o.line);
    }
    await this.deps.bus.publish(
      [...byGateway].map(([gw, lines]) => ({ stream: this.deps.bus.key(outStream(gw)), payload: encodeOutbound(lines), maxLen: OUT_MAX_LEN })),
    );
  }

  private async resend(): Promise<void> {
    const now = this.clock();
    const due = await this.deps.db.withTransaction((tx) => store.takeDueResends(tx, this.opts.cluster, now, this.opts.resendBaseMs, this.opts.resendMaxDelayMs, this.opts.resendMaxAttempts, ROUND_LIMIT));
    if (due.length === 0) return;
    await this.publish(due.map((m) => ({ gateway: m.gateway, line: [m.addr, formatMsg(m.id, m.sender, m.sentAt, m.body), 0] })));
    this.metrics.pushes.inc({ kind: "resend" }, due.length);
    if (due.length === ROUND_LIMIT) this.resendLoop.kick();
  }

  private async pushStranded(): Promise<void> {
    const now = this.clock();
    const next = new Date(now.getTime() + this.opts.resendBaseMs);
    const olderThan = new Date(now.getTime() - 1000);
    // A SEND whose batch saw the recipient's session here while a login in another cluster
    // moved it (peer-sync's hand-over ran before that batch committed): only we have the
    // message, and we no longer push to that user. It goes to the other clusters now.
    const handed = await handOverUndelivered(this.deps.db, { cluster: this.opts.cluster, sentBefore: olderThan, limit: ROUND_LIMIT });
    if (handed > 0) this.deps.logger.info({ messages: handed }, "messages for sessions now held by another cluster handed over");
    const due = await this.deps.db.withTransaction((tx) => store.takeStrandedForOnline(tx, this.opts.cluster, olderThan, next, 500));
    if (due.length === 0) return;
    await this.publish(due.map((m) => ({ gateway: m.gateway, line: [m.addr, formatMsg(m.id, m.sender, m.sentAt, m.body), 0] })));
    this.metrics.pushes.inc({ kind: "stranded" }, due.length);
  }

  private async expire(): Promise<void> {
    const now = this.clock();
    const gone = await this.deps.db.withTransaction(async (tx) => {
      const expired = await store.expireSessions(tx, this.opts.cluster, new Date(now.getTime() - this.opts.leaseMs));
      for (const s of expired) {
        await store.logConnection(tx, s.user, "expired", this.opts.cluster, s.gateway, s.addr, now);
        await enqueueFrame(tx, "session.down", sessionDownPayload(s, this.opts.cluster, "expired", now));
      }
      return expired;
    });
    if (gone.length === 0) return;
    await this.publish(gone.map((s) => ({ gateway: s.gateway, line: [s.addr, "BYE expired", 0] })));
    this.metrics.expired.inc(gone.length);
    this.deps.logger.info({ users: gone.length }, "sessions expired");
  }

  /** Lines peer-sync decided for our clients (`BYE replaced` by a login in another cluster, `ALL` from another cluster). */
  private async pushFromPeers(): Promise<void> {
    const lines = await this.deps.db.withTransaction((tx) => store.takePendingPushes(tx, ROUND_LIMIT));
    if (lines.length === 0) return;
    // gateway '' (a REDIRECT to another cluster's client): any live gateway of ours can send it.
    const any = this.liveGateway();
    const out: Outgoing[] = [];
    for (const p of lines) {
      const gateway = p.gateway || any;
      if (gateway) out.push({ gateway, line: [p.addr, p.line, 0] });
    }
    if (out.length < lines.length) this.deps.logger.warn({ dropped: lines.length - out.length }, "no live gateway seen lately to send pushes for other clusters' clients through");
    await this.publish(out);
    if (lines.length === ROUND_LIMIT) this.peerPushLoop.kick();
  }

  private liveGateway(): string | undefined {
    let best: string | undefined;
    let at = Date.now() - GATEWAY_SEEN_MS;
    for (const [g, t] of this.gatewaysSeen) {
      if (t >= at) [best, at] = [g, t];
      else if (t < Date.now() - 10 * GATEWAY_SEEN_MS) this.gatewaysSeen.delete(g);
    }
    return best;
  }

  private async announceSelf(): Promise<void> {
    await store.upsertSelfServer(this.deps.db, { name: this.opts.cluster, address: this.opts.publicAddress, quota: this.opts.quota }, this.clock());
  }
}

/** A bounded label: the protocol command (LIVE for a heartbeat), or "other" for what does not parse. */
function commandLabel(inc: Incoming): string {
  const p = parsedOf(inc);
  return p.ok ? p.req.cmd : "other";
}
