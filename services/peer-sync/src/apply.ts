/**
 * The inbound apply path: what an authenticated, validated request does to this cluster's
 * database. Every handler is idempotent, so a request applied twice (a retry after a lost
 * answer) leaves the same state as once.
 */
import type { Db } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import type { PeerConfig } from "./config.ts";
import {
  comparePositions,
  FrameError,
  PROTOCOL_VERSION,
  ZERO_POSITION,
  type AnnounceBody,
  type FrameKinds,
  type FramesAck,
  type FramesBody,
  type HelloBody,
  type OutboxPosition,
  type ServerStatus,
  type StatusReply,
} from "./frames.ts";
import type { PeerSyncMetrics } from "./metrics.ts";
import type { IgnoreReason } from "./ownership.ts";
import type { SyncHandlers } from "./server.ts";
import * as store from "./store.ts";

export interface ApplierDeps {
  db: Db;
  logger: Logger;
  metrics: PeerSyncMetrics;
  kinds: FrameKinds;
  /** This cluster's name. */
  self: string;
  /** This server's status, for every answer. */
  selfStatus: () => Promise<ServerStatus>;
  /** A peer showed it is alive (it announced itself). */
  onAnnounce: (peer: string) => void;
  clock?: () => Date;
}

/** At most one log line per (kind, reason) per second: a peer sending lies in bulk must not flood the logs. */
const IGNORED_LOG_EVERY_MS = 1000;

interface Ignored {
  kind: string;
  reason: IgnoreReason;
  detail: Record<string, string>;
}

export class Applier implements SyncHandlers {
  private readonly d: ApplierDeps;
  /** The linked cluster of a name; the set changes while running (members join and are revoked). */
  private readonly peers: (name: string) => PeerConfig | undefined;
  private readonly clock: () => Date;
  private readonly ignoredLogged = new Map<string, { at: number; suppressed: number }>();

  /** `peers`: a fixed list, or a lookup of the live set. */
  constructor(peers: PeerConfig[] | ((name: string) => PeerConfig | undefined), d: ApplierDeps) {
    this.d = d;
    if (typeof peers === "function") this.peers = peers;
    else {
      const m = new Map(peers.map((p) => [p.name, p]));
      this.peers = (name) => m.get(name);
    }
    this.clock = d.clock ?? (() => new Date());
  }

  private async reply(): Promise<StatusReply> {
    return { v: PROTOCOL_VERSION, kind: "status", server: await this.d.selfStatus() };
  }

  private checkSender(peer: string, body: { server: ServerStatus }): PeerConfig {
    // The signature proves who sent it; a body speaking for someone else is a bug or an attack.
    if (body.server.name !== peer) throw new FrameError(`server.name ${JSON.stringify(body.server.name)} is not the sender ${peer}`);
    const p = this.peers(peer);
    // Authenticated a moment ago with its key: only a revocation in between gets here.
    if (!p) throw new FrameError(`${peer} is not linked any more`);
    return p;
  }

  async announce(peer: string, body: AnnounceBody): Promise<StatusReply> {
    const p = this.checkSender(peer, body);
    if (body.server.syncUrl !== p.syncUrl) {
      this.d.logger.warn({ peer, announced: body.server.syncUrl, configured: p.syncUrl }, "peer announces a sync URL other than the configured one; still calling the configured one");
    }
    // Not re-broadcast: every cluster announces itself to each of its peers directly.
    await store.applyAnnounce(this.d.db, peer, body.server, p.proximity, this.clock());
    this.d.metrics.applied.inc({ kind: "announce" });
    this.d.logger.info({ peer, address: body.server.address }, "peer announced itself");
    this.d.onAnnounce(peer);
    return this.reply();
  }

  async hello(peer: string, body: HelloBody): Promise<StatusReply> {
    this.checkSender(peer, body);
    await store.applyHello(this.d.db, peer, body.server, this.clock());
    this.d.metrics.applied.inc({ kind: "hello" });
    return this.reply();
  }

  /**
   * One transaction per batch: frames at or below the peer's applied position are skipped
   * (a re-send after a lost ack), the rest applied in order, and the position moves with them.
   */
  async frames(peer: string, body: FramesBody): Promise<FramesAck> {
    for (const f of body.frames) {
      if (!Object.hasOwn(this.d.kinds, f.kind)) throw new FrameError(`unknown frame kind ${JSON.stringify(f.kind)}`);
    }
    const now = this.clock();
    const applied = new Map<string, number>();
    const ignored: Ignored[] = [];
    const upTo = await this.d.db.withTransaction(async (tx) => {
      // Per attempt: a transaction retried after a transient error starts over.
      applied.clear();
      ignored.length = 0;
      const unregisteredSessions = new Set<string>();
      const ignore = (kind: string, reason: IgnoreReason, detail: Record<string, string>) => void ignored.push({ kind, reason, detail });
      const cur = await store.lockInbound(tx, peer);
      let high: OutboxPosition = cur.epoch === body.epoch ? { txid: cur.txid, id: cur.id } : ZERO_POSITION;
      // Consecutive frames of one kind go to its handler together (one statement for many).
      let run: { kind: string; items: unknown[] } | undefined;
      const flush = async () => {
        if (!run) return;
        await this.d.kinds[run.kind]!.applyRun(tx, { peer, self: this.d.self, now, ignore, unregisteredSessions }, run.items);
        applied.set(run.kind, (applied.get(run.kind) ?? 0) + run.items.length);
        run = undefined;
      };
      for (const f of body.frames) {
        const pos = { txid: f.txid, id: f.id };
        if (comparePositions(pos, high) <= 0) continue;
        const data = this.d.kinds[f.kind]!.schema.safeParse(f.data);
        if (!data.success) throw new FrameError(`frame ${f.txid}:${f.id} (${f.kind}): ${data.error.issues.map((i) => `${i.path.map(String).join(".")}: ${i.message}`).join("; ")}`);
        if (run?.kind !== f.kind) {
          await flush();
          run = { kind: f.kind, items: [] };
        }
        run.items.push(data.data);
        high = pos;
      }
      await flush();
      await store.setInbound(tx, peer, body.epoch, high, now);
      return high;
    });
    const notApplied = new Map<string, number>();
    for (const i of ignored) notApplied.set(i.kind, (notApplied.get(i.kind) ?? 0) + 1);
    for (const [kind, n] of applied) {
      const ok = n - (notApplied.get(kind) ?? 0);
      if (ok > 0) this.d.metrics.applied.inc({ kind }, ok);
    }
    this.reportIgnored(peer, ignored);
    // Acknowledged all the same: the frame was received and judged. Refusing the batch would
    // only make the peer send it again for ever, and stop the frames of it that are its own.
    return { v: PROTOCOL_VERSION, kind: "ack", upTo };
  }

  /** Counts each ignored frame; logs (warn) the first of each kind and reason, at most once a second. */
  private reportIgnored(peer: string, ignored: Ignored[]): void {
    const byKey = new Map<string, { first: Ignored; n: number }>();
    for (const i of ignored) {
      this.d.metrics.framesRefused.inc({ kind: i.kind, reason: i.reason });
      const key = `${i.kind} ${i.reason}`;
      const g = byKey.get(key);
      if (g) g.n++;
      else byKey.set(key, { first: i, n: 1 });
    }
    const nowMs = this.clock().getTime();
    for (const [key, { first, n }] of byKey) {
      const last = this.ignoredLogged.get(key);
      if (last && nowMs - last.at < IGNORED_LOG_EVERY_MS) {
        last.suppressed += n;
        continue;
      }
      this.d.logger.warn(
        { peer, kind: first.kind, reason: first.reason, frames: n, example: first.detail, suppressedSinceLast: last?.suppressed ?? 0 },
        `peer frame ignored: ${peer} does not own what it would change (${first.reason})`,
      );
      this.ignoredLogged.set(key, { at: nowMs, suppressed: 0 });
    }
  }
}
