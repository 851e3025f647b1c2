/**
 * The peer-sync component: the inbound endpoint, one Link and one OutboxPump per configured
 * peer, and the housekeeping of nonces and acknowledged outbox rows.
 */
import { CHANNELS, type Db, type Listener } from "@pesan/shared/db";
import type { Logger, Registry } from "@pesan/shared/observability";
import type { Lifecycle } from "@pesan/shared/runtime";
import { Applier } from "./apply.ts";
import type { ReplayGuard } from "./auth.ts";
import { PeerClient } from "./client.ts";
import type { PeerConfig } from "./config.ts";
import { FRAME_KINDS, type FrameKinds, type ServerStatus } from "./frames.ts";
import { writeSnapshot } from "./kinds.ts";
import { Link, type PeerCaller } from "./link.ts";
import type { LinkState } from "./liveness.ts";
import { Loop } from "@pesan/shared/runtime";
import { createPeerSyncMetrics, type PeerSyncMetrics } from "./metrics.ts";
import { OutboxPump } from "./pump.ts";
import { SyncServer } from "./server.ts";
import * as store from "./store.ts";

export interface PeerSyncOptions {
  self: string;
  publicAddress: string;
  /** How peers reach us; sent in announces. */
  syncUrl: string;
  peers: PeerConfig[];
  listen: { host: string; port: number };
  /** Serve https with these (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** CAs trusted when calling https peers (PEM). */
  ca?: Buffer;
  intervalMs: number;
  failuresToDown: number;
  timeoutMs: number;
  windowMs: number;
  outboxPollMs: number;
  outboxBatch: number;
  /** How often a session.snapshot of this cluster's sessions is sent (0: never). Default 30 s. */
  snapshotMs?: number;
  /** A peer not UP with rows waiting longer than this loses them and is bootstrapped when back (0: never). Default 1 h. */
  backlogMaxAgeMs?: number;
}

export interface PeerSyncDeps {
  db: Db;
  logger: Logger;
  registry: Registry;
  clock?: () => Date;
  /** Replicated frame kinds; the production set by default (tests add their own). */
  kinds?: FrameKinds;
  replay?: ReplayGuard;
  /** How to call a peer; a signed PeerClient by default. */
  connect?: (peer: PeerConfig) => PeerCaller & { close(): void };
}

const HOUSEKEEPING_MS = 10_000;
/** How often the per-peer backlog (outbox depth, replication lag) is measured. */
const BACKLOG_MS = 1000;
const DEFAULT_SNAPSHOT_MS = 30_000;
const DEFAULT_BACKLOG_MAX_AGE_MS = 3_600_000;
/** Unregistered accounts are remembered this long against late user.register frames. */
const TOMBSTONE_KEEP_MS = 30 * 86_400_000;
/** How long a snapshot waits for older transactions to end before it is skipped. */
const SNAPSHOT_WAIT_MS = 5000;

export class PeerSync implements Lifecycle {
  readonly name = "peer-sync";
  readonly server: SyncServer;
  readonly metrics: PeerSyncMetrics;
  private readonly o: PeerSyncOptions;
  private readonly d: PeerSyncDeps;
  private readonly clients: Array<PeerCaller & { close(): void }>;
  private readonly links = new Map<string, Link>();
  private readonly pumps: OutboxPump[] = [];
  private readonly housekeeping: Loop;
  private readonly backlogLoop: Loop;
  private readonly backlogs = new Map<string, { depth: number; lagSeconds: number }>();
  /** Peers whose backlog this process dropped: bootstrapped at their next answer. */
  private readonly backlogDropped = new Set<string>();
  private readonly snapshots: Loop | undefined;
  private readonly replay: ReplayGuard;
  private wake: Listener | undefined;
  private epoch: string | undefined;
  private started = false;
  private closed = false;

  constructor(o: PeerSyncOptions, d: PeerSyncDeps) {
    this.o = o;
    this.d = d;
    const clock = d.clock ?? (() => new Date());
    this.metrics = createPeerSyncMetrics(d.registry, o.peers.map((p) => p.name));
    this.replay = d.replay ?? new store.PgReplayGuard(d.db);
    const selfStatus = () => this.selfStatus();
    const applier = new Applier(o.peers, {
      db: d.db,
      logger: d.logger,
      metrics: this.metrics,
      kinds: d.kinds ?? FRAME_KINDS,
      self: o.self,
      selfStatus,
      onAnnounce: (peer) => this.links.get(peer)?.observeAnnounce(),
      clock,
    });
    this.server = new SyncServer(
      { self: o.self, keys: new Map(o.peers.map((p) => [p.name, p.key])), host: o.listen.host, port: o.listen.port, windowMs: o.windowMs, ...(o.tls ? { tls: o.tls } : {}) },
      { replay: this.replay, handlers: applier, logger: d.logger, metrics: this.metrics, clock: () => clock().getTime() },
    );
    const connect =
      d.connect ??
      ((p: PeerConfig) =>
        new PeerClient({ self: o.self, peer: p.name, baseUrl: p.syncUrl, key: p.key, timeoutMs: o.timeoutMs, clock: () => clock().getTime(), ...(o.ca ? { ca: o.ca } : {}) }));
    this.clients = [];
    for (const p of o.peers) {
      const client = connect(p);
      this.clients.push(client);
      const link = new Link(
        p,
        { intervalMs: o.intervalMs, failuresToDown: o.failuresToDown },
        { db: d.db, client, logger: d.logger, metrics: this.metrics, selfStatus, onStatus: (peer, s) => this.onPeerStatus(peer, s), clock },
      );
      this.links.set(p.name, link);
      this.pumps.push(new OutboxPump(p.name, { pollMs: o.outboxPollMs, batch: o.outboxBatch }, { db: d.db, client, logger: d.logger, metrics: this.metrics, isUp: () => link.up, clock }));
    }
    this.housekeeping = new Loop("housekeeping", HOUSEKEEPING_MS, () => this.tidy(), d.logger);
    this.backlogLoop = new Loop("backlog", BACKLOG_MS, () => this.measureBacklog(), d.logger, { immediate: true });
    const snapshotMs = o.snapshotMs ?? DEFAULT_SNAPSHOT_MS;
    // Only with the production kinds: a receiver without session.snapshot would refuse the batch.
    this.snapshots = snapshotMs > 0 && o.peers.length > 0 && d.kinds === undefined ? new Loop("snapshot", snapshotMs, () => this.snapshot(), d.logger, { immediate: true }) : undefined;
  }

  /** The periodic full refresh of Update Connected: this cluster's sessions, to every peer. */
  private async snapshot(): Promise<void> {
    const ok = await this.d.db.withTransaction((tx) => writeSnapshot(tx, this.o.self, SNAPSHOT_WAIT_MS));
    if (!ok) this.d.logger.warn("session snapshot skipped: an older transaction is still running");
    for (const p of this.pumps) p.kick();
  }

  /** Peers linked for the first time get what this cluster had before (see store.bootstrapPeer). */
  private async bootstrapNewPeers(): Promise<void> {
    const now = this.d.clock?.() ?? new Date();
    for (const peer of await store.peersToBootstrap(this.d.db, this.o.peers.map((p) => p.name))) {
      const n = await this.d.db.withTransaction((tx) => store.bootstrapPeer(tx, peer, this.o.self, now));
      if (n) this.d.logger.info({ peer, ...n }, "new peer link: this cluster's accounts and undelivered messages queued for it");
    }
  }

  async selfStatus(): Promise<ServerStatus> {
    this.epoch ??= await store.epoch(this.d.db);
    return { name: this.o.self, address: this.o.publicAddress, syncUrl: this.o.syncUrl, epoch: this.epoch, ...(await store.localLoad(this.d.db, this.o.self)) };
  }

  /**
   * A peer whose database was recreated (a new epoch) is bootstrapped again, and so is one back
   * after its backlog was dropped (dropDeadBacklogs marked it).
   */
  private async onPeerStatus(peer: string, status: ServerStatus): Promise<void> {
    if (status.epoch !== undefined && (await store.notePeerEpoch(this.d.db, peer, status.epoch))) {
      this.d.logger.warn({ peer, epoch: status.epoch }, "peer's database is new (another epoch): sending it this cluster's accounts and undelivered messages again");
      await this.bootstrapNewPeers();
    } else if (this.backlogDropped.has(peer) || (await store.peersToBootstrap(this.d.db, [peer])).length > 0) {
      this.backlogDropped.delete(peer);
      this.d.logger.info({ peer }, "peer is back after its backlog was dropped: sending it this cluster's accounts and undelivered messages");
      await this.bootstrapNewPeers();
    }
  }

  /**
   * Bounds the outbox while a peer is gone for good: a peer not UP whose oldest waiting row is
   * older than backlogMaxAgeMs loses its backlog (the snapshots alone add a full session list
   * every 30 s behind its cursor) and is bootstrapped when it is back. What it then misses:
   * changes that are not state (unregisters, READ/DELETE of copies it holds, broadcasts).
   */
  private async dropDeadBacklogs(): Promise<void> {
    const maxAgeS = (this.o.backlogMaxAgeMs ?? DEFAULT_BACKLOG_MAX_AGE_MS) / 1000;
    if (maxAgeS <= 0) return;
    let dropped = false;
    for (const [peer, b] of this.backlogs) {
      if (b.depth === 0 || b.lagSeconds <= maxAgeS || this.links.get(peer)?.up !== false) continue;
      if (!(await store.dropBacklog(this.d.db, peer, this.d.clock?.() ?? new Date()))) continue;
      dropped = true;
      this.backlogDropped.add(peer);
      this.pumps.find((p) => p.name === `pump-${peer}`)?.forgetCursor();
      this.metrics.backlogDropped.inc({ peer }, b.depth);
      this.d.logger.warn({ peer, rows: b.depth, lagSeconds: Math.round(b.lagSeconds) }, "peer DOWN too long: its outbox backlog dropped; it is bootstrapped when back");
    }
    if (dropped) await store.pruneOutbox(this.d.db, this.o.peers.map((p) => p.name));
  }

  /** Each link's state and backlog (unacknowledged outbox rows, age of the oldest in seconds), for /healthz. */
  linkStates(): Record<string, { state: LinkState; failures: number; error?: string; outboxDepth: number; lagSeconds: number }> {
    return Object.fromEntries(
      [...this.links].map(([name, l]) => {
        const b = this.backlogs.get(name) ?? { depth: 0, lagSeconds: 0 };
        return [name, { ...l.describe(), outboxDepth: b.depth, lagSeconds: Math.round(b.lagSeconds * 1000) / 1000 }];
      }),
    );
  }

  private async measureBacklog(): Promise<void> {
    if (this.o.peers.length === 0) return;
    const m = await store.backlog(this.d.db, this.o.peers.map((p) => p.name));
    for (const [peer, b] of m) {
      this.backlogs.set(peer, b);
      this.metrics.outboxDepth.set({ peer }, b.depth);
      this.metrics.replicationLag.set({ peer }, b.lagSeconds);
    }
    await this.dropDeadBacklogs();
  }

  async start(): Promise<void> {
    await store.seedPeers(this.d.db, this.o.peers);
    await this.bootstrapNewPeers();
    // Listen before calling out: a peer answering our announce may call back at once.
    await this.server.start();
    for (const l of this.links.values()) await l.start();
    for (const p of this.pumps) await p.start();
    // The routers' commits of outbox rows wake the pumps (migration 005); the poll stays as the net.
    this.wake = await this.d.db.listen(CHANNELS.outbox, () => {
      for (const p of this.pumps) p.kick();
    });
    await this.housekeeping.start();
    await this.backlogLoop.start();
    await this.snapshots?.start();
    this.started = true;
    this.d.logger.info({ self: this.o.self, peers: this.o.peers.map((p) => p.name), syncUrl: this.o.syncUrl }, "peer-sync running");
  }

  async close(): Promise<void> {
    if (this.closed || !this.started) return;
    this.closed = true;
    await this.wake?.close();
    await this.housekeeping.close();
    await this.backlogLoop.close();
    await this.snapshots?.close();
    await Promise.all(this.pumps.map((p) => p.close()));
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await this.server.close();
    for (const c of this.clients) c.close();
  }

  private async tidy(): Promise<void> {
    await this.replay.prune(this.d.clock?.() ?? new Date());
    await store.pruneOutbox(this.d.db, this.o.peers.map((p) => p.name));
    await store.pruneTombstones(this.d.db, new Date((this.d.clock?.() ?? new Date()).getTime() - TOMBSTONE_KEEP_MS));
  }
}
