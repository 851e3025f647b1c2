/**
 * The peer-sync component: the inbound endpoint, one Link and one OutboxPump per linked
 * cluster (the PEERS ones, and the members that joined by invite, added and removed while it
 * runs), and the housekeeping of nonces and acknowledged outbox rows.
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
import { JoinDesk, joinByInvite } from "./membership/join.ts";
import { pairKey, type KeyPair } from "./membership/keys.ts";
import * as members from "./membership/store.ts";
import type { Invite } from "./membership/token.ts";

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
  /** JOIN: join the federation of this invite's issuer at start (unless joined already). */
  join?: Invite;
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
/** The members are re-read this often even without a notification (LISTEN is the fast path). */
const MEMBERS_POLL_MS = 2000;

/**
 * One linked cluster's parts. `member`: it joined by invite (its key is derived), not from
 * PEERS; `invite`: the membership it is linked under (the invite that admitted it, null: not known).
 */
interface PeerParts {
  config: PeerConfig;
  member: boolean;
  invite?: string | null;
  client: PeerCaller & { close(): void };
  link: Link;
  pump: OutboxPump;
}

export class PeerSync implements Lifecycle {
  readonly name = "peer-sync";
  readonly server: SyncServer;
  readonly metrics: PeerSyncMetrics;
  private readonly o: PeerSyncOptions;
  private readonly d: PeerSyncDeps;
  /** Every linked cluster; changes while running (members joining, revoked). */
  private readonly peers = new Map<string, PeerParts>();
  /** Each linked cluster's key, the very map the SyncServer reads: a revoked member is refused at once. */
  private readonly keys = new Map<string, string>();
  private readonly staticNames: ReadonlySet<string>;
  private readonly connect: (peer: PeerConfig) => PeerCaller & { close(): void };
  private readonly clock: () => Date;
  private readonly membersLoop: Loop;
  private membersWake: Listener | undefined;
  /**
   * Member changes are applied one at a time, in order, and housekeeping that prunes the outbox
   * or moves cursors (tidy, dropDeadBacklogs) takes its turn on the same chain (serialized):
   * never while a member is half re-linked.
   */
  private reloading: Promise<void> = Promise.resolve();
  /** Static peers' public keys as last recorded (written when they change). */
  private readonly publicKeys = new Map<string, string>();
  private identity: KeyPair | undefined;
  /** Set in start(), before the members are read: from then on an added peer starts at once. */
  private live = false;
  private readonly housekeeping: Loop;
  private readonly backlogLoop: Loop;
  private readonly backlogs = new Map<string, { depth: number; lagSeconds: number }>();
  /**
   * Active members no key can be derived with (a low-order public key, which a lying member
   * could introduce): never linked, but their peer_links rows hold the outbox (pruneOutbox), so
   * their backlog is measured and dropped like a DOWN peer's.
   */
  private unlinkable = new Set<string>();
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
    this.clock = clock;
    this.staticNames = new Set(o.peers.map((p) => p.name));
    this.metrics = createPeerSyncMetrics(d.registry, o.peers.map((p) => p.name));
    this.replay = d.replay ?? new store.PgReplayGuard(d.db);
    const selfStatus = () => this.selfStatus();
    const applier = new Applier((name) => this.peers.get(name)?.config, {
      db: d.db,
      logger: d.logger,
      metrics: this.metrics,
      kinds: d.kinds ?? FRAME_KINDS,
      self: o.self,
      selfStatus,
      onAnnounce: (peer) => this.peers.get(peer)?.link.observeAnnounce(),
      clock,
    });
    const join = new JoinDesk({
      db: d.db,
      logger: d.logger,
      metrics: this.metrics,
      self: o.self,
      selfInfo: () => ({ name: o.self, syncUrl: o.syncUrl, address: o.publicAddress, publicKey: this.identity!.publicKey }),
      staticPeers: this.staticNames,
      linked: () => [...this.peers.keys()],
      windowMs: o.windowMs,
      replay: this.replay,
      clock,
      onJoined: () => void this.reloadMembers(),
    });
    this.server = new SyncServer(
      { self: o.self, keys: this.keys, host: o.listen.host, port: o.listen.port, windowMs: o.windowMs, ...(o.tls ? { tls: o.tls } : {}) },
      { replay: this.replay, handlers: applier, logger: d.logger, metrics: this.metrics, clock: () => clock().getTime(), join },
    );
    this.connect =
      d.connect ??
      ((p: PeerConfig) =>
        new PeerClient({ self: o.self, peer: p.name, baseUrl: p.syncUrl, key: p.key, timeoutMs: o.timeoutMs, clock: () => clock().getTime(), ...(o.ca ? { ca: o.ca } : {}) }));
    for (const p of o.peers) this.buildPeer(p, false);
    this.membersLoop = new Loop("members", MEMBERS_POLL_MS, () => this.reloadMembers(), d.logger);
    this.housekeeping = new Loop("housekeeping", HOUSEKEEPING_MS, () => this.tidy(), d.logger);
    this.backlogLoop = new Loop("backlog", BACKLOG_MS, () => this.measureBacklog(), d.logger, { immediate: true });
    const snapshotMs = o.snapshotMs ?? DEFAULT_SNAPSHOT_MS;
    // Only with the production kinds: a receiver without session.snapshot would refuse the batch.
    this.snapshots = snapshotMs > 0 && d.kinds === undefined ? new Loop("snapshot", snapshotMs, () => this.snapshot(), d.logger, { immediate: true }) : undefined;
  }

  /** The periodic full refresh of Update Connected: this cluster's sessions, to every peer. */
  private async snapshot(): Promise<void> {
    if (this.peers.size === 0) return;
    const ok = await this.d.db.withTransaction((tx) => writeSnapshot(tx, this.o.self, SNAPSHOT_WAIT_MS));
    if (!ok) this.d.logger.warn("session snapshot skipped: an older transaction is still running");
    for (const p of this.peers.values()) p.pump.kick();
  }

  private peerNames(): string[] {
    return [...this.peers.keys()];
  }

  /** One linked cluster's client, link and pump (started by the caller once running). */
  private buildPeer(p: PeerConfig, member: boolean): PeerParts {
    const client = this.connect(p);
    const link = new Link(
      p,
      { intervalMs: this.o.intervalMs, failuresToDown: this.o.failuresToDown },
      { db: this.d.db, client, logger: this.d.logger, metrics: this.metrics, selfStatus: () => this.selfStatus(), onStatus: (peer, s) => this.onPeerStatus(peer, s), clock: this.clock },
    );
    const pump = new OutboxPump(p.name, { pollMs: this.o.outboxPollMs, batch: this.o.outboxBatch }, { db: this.d.db, client, logger: this.d.logger, metrics: this.metrics, isUp: () => link.up, clock: this.clock });
    const parts = { config: p, member, client, link, pump };
    this.peers.set(p.name, parts);
    this.keys.set(p.name, p.key);
    return parts;
  }

  /** Runs `work` after everything queued on the member chain; its failure is the caller's, the chain goes on. */
  private serialized(work: () => Promise<void>): Promise<void> {
    const next = this.reloading.then(work);
    this.reloading = next.catch(() => undefined);
    return next;
  }

  /** Re-reads the members (a notification, the poll, a join here); one change at a time. */
  private reloadMembers(): Promise<void> {
    return this.serialized(() => this.syncMembers()).catch((err: unknown) => this.d.logger.error({ err }, "cannot apply the member list"));
  }

  /**
   * Makes the links match peer_members: a member not linked yet gets its key (derived from the
   * two key pairs), client, link and pump, started now; a revoked one loses its key first (its
   * requests are refused from this moment), then its link. One whose key, sync URL or
   * membership changed is linked again: a revoke and a rejoin (a new invite) seen in one reload
   * leave a fresh peer_links row (forgetLink, then recordMember), and the new link reads its
   * cursor from it and is bootstrapped, as after a rejoin seen in two reloads.
   */
  private async syncMembers(): Promise<void> {
    if (!this.live || this.closed) return;
    const want = await this.wantedMembers();
    for (const [name, parts] of [...this.peers]) {
      if (!parts.member) continue;
      const w = want.get(name);
      if (w && w.config.key === parts.config.key && w.config.syncUrl === parts.config.syncUrl && w.invite === parts.invite) continue;
      await this.removePeer(name, w === undefined);
    }
    let added = false;
    for (const [name, { config: p, invite }] of want) {
      if (this.peers.has(name)) continue;
      const parts = this.buildPeer(p, true);
      parts.invite = invite;
      this.metrics.linkUp.set({ peer: name }, 0);
      await parts.link.start();
      await parts.pump.start();
      added = true;
      this.d.logger.info({ member: name, syncUrl: p.syncUrl }, "member linked");
    }
    // Keys set at start before the links (start()): none may outlive its member.
    for (const name of [...this.keys.keys()]) if (!this.staticNames.has(name) && !this.peers.has(name)) this.keys.delete(name);
    for (const name of [...this.backlogs.keys()]) if (!this.peers.has(name) && !this.unlinkable.has(name)) this.backlogs.delete(name);
    if (added) await this.bootstrapNewPeers();
  }

  /** Each active member's link settings (its key derived from the two key pairs) and membership. */
  private async wantedMembers(): Promise<Map<string, { config: PeerConfig; invite: string | null }>> {
    const want = new Map<string, { config: PeerConfig; invite: string | null }>();
    const unlinkable = new Set<string>();
    for (const m of await members.activeMembers(this.d.db)) {
      if (m.name === this.o.self || this.staticNames.has(m.name)) continue; // PEERS wins: its key is the operator's
      try {
        const key = pairKey({ name: this.o.self, keys: this.identity! }, m);
        want.set(m.name, { config: { name: m.name, syncUrl: m.syncUrl, address: m.address, key, proximity: members.MEMBER_PROXIMITY }, invite: m.inviteId });
      } catch (e) {
        if (!this.unlinkable.has(m.name)) this.d.logger.warn({ member: m.name, err: (e as Error).message }, "member not linked: no key can be derived with it");
        unlinkable.add(m.name);
      }
    }
    this.unlinkable = unlinkable;
    return want;
  }

  private async removePeer(name: string, revoked: boolean): Promise<void> {
    const parts = this.peers.get(name);
    if (!parts) return;
    this.keys.delete(name);
    this.peers.delete(name);
    await parts.pump.close();
    await parts.link.close();
    parts.client.close();
    this.backlogs.delete(name);
    for (const g of [this.metrics.linkUp, this.metrics.outboxDepth, this.metrics.replicationLag]) g.remove({ peer: name });
    // After the link stopped: a check in flight may have written its server_list row back.
    if (revoked) await members.forgetLink(this.d.db, name);
    this.d.logger.info({ member: name }, revoked ? "member revoked: link and key removed" : "member's key or sync URL changed: linking again");
  }

  /** Peers linked for the first time get what this cluster had before (see store.bootstrapPeer). */
  private async bootstrapNewPeers(): Promise<void> {
    const now = this.d.clock?.() ?? new Date();
    for (const peer of await store.peersToBootstrap(this.d.db, this.peerNames())) {
      const n = await this.d.db.withTransaction((tx) => store.bootstrapPeer(tx, peer, this.o.self, now));
      if (n) this.d.logger.info({ peer, ...n }, "new peer link: this cluster's accounts and undelivered messages queued for it");
    }
  }

  async selfStatus(): Promise<ServerStatus> {
    this.epoch ??= await store.epoch(this.d.db);
    return {
      name: this.o.self,
      address: this.o.publicAddress,
      syncUrl: this.o.syncUrl,
      epoch: this.epoch,
      ...(this.identity ? { publicKey: this.identity.publicKey } : {}),
      ...(await store.localLoad(this.d.db, this.o.self)),
    };
  }

  /**
   * A peer whose database was recreated (a new epoch) is bootstrapped again, and so is one back
   * after its backlog was dropped (dropDeadBacklogs marked it).
   */
  private async onPeerStatus(peer: string, status: ServerStatus): Promise<void> {
    // A PEERS peer's public key, from its signed answer: what a join answer hands a newcomer.
    if (status.publicKey !== undefined && this.staticNames.has(peer) && this.publicKeys.get(peer) !== status.publicKey) {
      await members.notePublicKey(this.d.db, peer, status.publicKey);
      this.publicKeys.set(peer, status.publicKey);
    }
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
      // Linked and DOWN, or never linkable; not one being linked again (out of the map meanwhile).
      const parts = this.peers.get(peer);
      const down = parts ? !parts.link.up : this.unlinkable.has(peer);
      if (b.depth === 0 || b.lagSeconds <= maxAgeS || !down) continue;
      if (!(await store.dropBacklog(this.d.db, peer, this.d.clock?.() ?? new Date()))) continue;
      dropped = true;
      this.backlogDropped.add(peer);
      this.peers.get(peer)?.pump.forgetCursor();
      this.metrics.backlogDropped.inc({ peer }, b.depth);
      this.d.logger.warn({ peer, rows: b.depth, lagSeconds: Math.round(b.lagSeconds) }, "peer DOWN too long: its outbox backlog dropped; it is bootstrapped when back");
    }
    if (dropped) await store.pruneOutbox(this.d.db);
  }

  /** Each link's state and backlog (unacknowledged outbox rows, age of the oldest in seconds), for /healthz. */
  linkStates(): Record<string, { state: LinkState; failures: number; error?: string; outboxDepth: number; lagSeconds: number }> {
    return Object.fromEntries(
      [...this.peers].map(([name, p]) => {
        const b = this.backlogs.get(name) ?? { depth: 0, lagSeconds: 0 };
        return [name, { ...p.link.describe(), outboxDepth: b.depth, lagSeconds: Math.round(b.lagSeconds * 1000) / 1000 }];
      }),
    );
  }

  private async measureBacklog(): Promise<void> {
    if (this.peers.size === 0 && this.unlinkable.size === 0) return;
    const m = await store.backlog(this.d.db, [...this.peerNames(), ...this.unlinkable]);
    for (const [peer, b] of m) {
      if (this.unlinkable.has(peer)) {
        this.backlogs.set(peer, b); // no gauges: no link
        continue;
      }
      if (!this.peers.has(peer)) continue; // removed meanwhile
      this.backlogs.set(peer, b);
      this.metrics.outboxDepth.set({ peer }, b.depth);
      this.metrics.replicationLag.set({ peer }, b.lagSeconds);
    }
    await this.serialized(() => this.dropDeadBacklogs());
  }

  async start(): Promise<void> {
    this.identity = await members.ensureIdentity(this.d.db);
    if (this.o.join) {
      const invite = this.o.join;
      const r = await joinByInvite({
        db: this.d.db,
        logger: this.d.logger,
        self: { name: this.o.self, syncUrl: this.o.syncUrl, address: this.o.publicAddress, publicKey: this.identity.publicKey },
        invite,
        timeoutMs: Math.max(this.o.timeoutMs, 5000),
        clock: this.clock,
        ...(this.o.ca ? { ca: this.o.ca } : {}),
      });
      if (r === "member already") this.d.logger.info({ issuer: invite.issuer }, "JOIN is set but this cluster joined already: the member list in the database is used");
    }
    // Members keep their link rows (cursors, bootstrap) across restarts, as PEERS entries do.
    await store.seedPeers(this.d.db, this.o.peers);
    await this.bootstrapNewPeers();
    // The members' keys before listening: a member calling in while this process starts must
    // not be refused as unknown (it would read as "revoked" there). Their links start below.
    for (const [name, w] of await this.wantedMembers()) this.keys.set(name, w.config.key);
    // Listen before calling out: a peer answering our announce may call back at once.
    await this.server.start();
    for (const p of this.peers.values()) await p.link.start();
    for (const p of this.peers.values()) await p.pump.start();
    // The routers' commits of outbox rows wake the pumps (migration 005); the poll stays as the net.
    this.wake = await this.d.db.listen(CHANNELS.outbox, () => {
      for (const p of this.peers.values()) p.pump.kick();
    });
    this.live = true;
    // A join here, a member.join or member.revoke applied, the `revoke` command (migration 014).
    this.membersWake = await this.d.db.listen(CHANNELS.members, () => void this.reloadMembers());
    await this.reloadMembers();
    await this.membersLoop.start();
    await this.housekeeping.start();
    await this.backlogLoop.start();
    await this.snapshots?.start();
    this.started = true;
    this.d.logger.info({ self: this.o.self, peers: this.peerNames(), syncUrl: this.o.syncUrl }, "peer-sync running");
  }

  async close(): Promise<void> {
    if (this.closed || !this.started) return;
    this.closed = true;
    await this.wake?.close();
    await this.membersWake?.close();
    await this.membersLoop.close();
    await this.reloading;
    await this.housekeeping.close();
    await this.backlogLoop.close();
    await this.snapshots?.close();
    const all = [...this.peers.values()];
    await Promise.all(all.map((p) => p.pump.close()));
    await Promise.all(all.map((p) => p.link.close()));
    await this.server.close();
    for (const p of all) p.client.close();
  }

  private async tidy(): Promise<void> {
    await this.replay.prune(this.d.clock?.() ?? new Date());
    await this.serialized(async () => {
      const stray = await store.forgetStrayLinks(this.d.db, [...this.staticNames]);
      if (stray > 0) this.d.logger.info({ rows: stray }, "link rows of clusters neither in PEERS nor members forgotten (they would keep the outbox from being pruned)");
      await store.pruneOutbox(this.d.db);
    });
    await store.pruneTombstones(this.d.db, new Date((this.d.clock?.() ?? new Date()).getTime() - TOMBSTONE_KEEP_MS));
    await members.pruneInvites(this.d.db, new Date(this.clock().getTime() - TOMBSTONE_KEEP_MS));
    await members.pruneRevokedInvites(this.d.db, new Date(this.clock().getTime() - TOMBSTONE_KEEP_MS));
  }
}
