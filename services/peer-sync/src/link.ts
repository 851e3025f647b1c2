/**
 * One link, from our side: checks the peer every interval and keeps its server_list row and
 * link metrics in step with the answers. The first successful exchange after start, and after
 * each time the peer was DOWN, is an announce (the peer may have come back with an empty
 * database); the others are hellos. Each hello's round trip feeds the peer's measured
 * distance (rtt.ts), which the routers order SERVERS and ERR FULL by.
 */
import type { Db } from "@pesan/shared/db";
import { askLive } from "@pesan/client";
import type { Logger } from "@pesan/shared/observability";
import type { PeerConfig } from "./config.ts";
import { PATHS, PROTOCOL_VERSION, statusReply, type ServerStatus } from "./frames.ts";
import { Liveness, type LinkState, type Transition } from "./liveness.ts";
import { Loop } from "@pesan/shared/runtime";
import type { PeerSyncMetrics } from "./metrics.ts";
import { RttEstimator } from "./rtt.ts";
import * as store from "./store.ts";
import { PeerCallError } from "./client.ts";

/** A link's error when the peer has no link with this cluster: revoked there (or never admitted). */
export const NOT_A_MEMBER = "refused: not a member (403 unknown_sender)";

/** What a failed check says, for /healthz and the logs: a peer that does not know us is told apart from one that is just down. */
export function checkFailure(e: unknown): string {
  if (e instanceof PeerCallError && e.kind === "refused" && e.status === 403 && e.message.includes("(unknown_sender)")) return NOT_A_MEMBER;
  return e instanceof Error ? e.message : String(e);
}

/** What a link needs of a client: PeerClient, or a fake in tests. */
export interface PeerCaller {
  post(path: string, body: unknown): Promise<unknown>;
}

export interface LinkDeps {
  db: Db;
  client: PeerCaller;
  logger: Logger;
  metrics: PeerSyncMetrics;
  selfStatus: () => Promise<ServerStatus>;
  /**
   * Whether the peer still answers its own clients at this address (`/@live?`). A link can be
   * DOWN with the cluster alive (a cut between us): then its clients must not be moved.
   */
  servesClients?: (address: string) => Promise<boolean>;
  /** Each answer's status, after the peer's row is written (the epoch check). */
  onStatus?: (peer: string, status: ServerStatus) => Promise<void>;
  clock?: () => Date;
}

/**
 * A heartbeat sent every 300 ms for up to 1.5 s: a live gateway answers even on a loaded
 * machine (a wrong "dead" would move live clients), and a dead one delays the REDIRECT by
 * 1.5 s, well inside a client's own heartbeat failover (3 missed 5 s heartbeats by default).
 */
export async function answersHeartbeat(address: string): Promise<boolean> {
  const m = /^\[(.+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) return false;
  try {
    await askLive(m[1]!, Number(m[2]), 1500, 300);
    return true;
  } catch {
    return false;
  }
}

export interface LinkOptions {
  intervalMs: number;
  failuresToDown: number;
}

export class Link {
  readonly name: string;
  readonly peer: PeerConfig;
  private readonly d: LinkDeps;
  private readonly liveness: Liveness;
  private readonly loop: Loop;
  private readonly clock: () => Date;
  private announced = false;
  private lastError = "";
  /** The last check was refused with 403 unknown_sender: logged once when that starts and once when it ends. */
  private notAMember = false;
  /** What the server_list row says, as far as we know: a failed write is retried next round. */
  private rowActive: boolean | undefined;
  /** Where the peer's clients reach it, as it last told us. */
  private clientAddress: string;
  /** The distance to the peer, from our hellos' round trips; written with each UP. */
  private readonly rtt = new RttEstimator();

  constructor(peer: PeerConfig, o: LinkOptions, d: LinkDeps) {
    this.name = `link-${peer.name}`;
    this.peer = peer;
    this.d = d;
    this.clock = d.clock ?? (() => new Date());
    this.liveness = new Liveness(o.failuresToDown);
    this.clientAddress = peer.address;
    this.loop = new Loop(this.name, o.intervalMs, () => this.checkOnce(), d.logger, { immediate: true });
  }

  get state(): LinkState {
    return this.liveness.state;
  }

  get up(): boolean {
    return this.liveness.state === "UP";
  }

  /** For /healthz: the state, the distance last published (once measured) and, while not UP, the last failure. */
  describe(): { state: LinkState; failures: number; rttMs?: number; error?: string } {
    const rtt = this.rtt.publishedMs === undefined ? {} : { rttMs: this.rtt.publishedMs };
    return this.up
      ? { state: "UP", failures: 0, ...rtt }
      : { state: this.state, failures: this.liveness.failures, ...rtt, ...(this.lastError ? { error: this.lastError } : {}) };
  }

  async start(): Promise<void> {
    await this.loop.start();
  }

  async close(): Promise<void> {
    await this.loop.close();
  }

  /**
   * The peer announced itself to us, so it is alive now: UP at once (its row was just written
   * active by the apply path), and our own checks take over from here.
   */
  observeAnnounce(): void {
    this.rowActive = true;
    this.track(this.liveness.success());
  }

  /** One round (the loop runs it every interval; tests call it directly). */
  async checkOnce(): Promise<void> {
    const kind = this.announced ? "hello" : "announce";
    // Outside the try: our own database failing says nothing about the peer (the round is
    // skipped and logged by the loop).
    const body = { v: PROTOCOL_VERSION, kind, server: await this.d.selfStatus() };
    const started = process.hrtime.bigint();
    let status: ServerStatus;
    try {
      const answer = statusReply.safeParse(await this.d.client.post(kind === "hello" ? PATHS.hello : PATHS.announce, body));
      if (!answer.success) throw new Error("the answer is not a v1 status");
      if (answer.data.server.name !== this.peer.name) throw new Error(`the answer comes from ${answer.data.server.name}, not ${this.peer.name}`);
      status = answer.data.server;
    } catch (e) {
      this.lastError = checkFailure(e);
      this.d.metrics.checks.inc({ peer: this.peer.name, outcome: "fail" });
      const t = this.liveness.failure();
      this.track(t);
      // Only once it made the link DOWN (LIVENESS_FAILURES in a row): not for a moment's refusal.
      this.noteNotAMember(this.lastError === NOT_A_MEMBER && t.state === "DOWN");
      if (t.state === "DOWN") {
        this.announced = false;
        // It may come back elsewhere: its distance is measured afresh (the row keeps the last).
        this.rtt.reset();
        if (this.rowActive !== false) {
          await store.markDown(this.d.db, this.peer.name);
          this.rowActive = false;
          await this.redirectClients(body.server);
        }
      }
      return;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.d.metrics.helloSeconds.observe({ peer: this.peer.name }, seconds);
    // The announce is no sample of the distance: it is the first exchange after start or after
    // DOWN, so it usually opens the connection (TCP, and TLS, handshakes: a few round trips).
    // Until a hello is timed the row keeps its last value.
    const rttMs = kind === "hello" ? this.rtt.sample(seconds * 1000) : undefined;
    this.d.metrics.checks.inc({ peer: this.peer.name, outcome: "ok" });
    this.lastError = "";
    this.noteNotAMember(false);
    this.announced = true;
    this.track(this.liveness.success());
    await store.markUp(this.d.db, this.peer.name, status, this.peer.proximity, this.clock(), rttMs);
    this.rowActive = true;
    this.clientAddress = status.address;
    await this.d.onStatus?.(this.peer.name, status);
  }

  /** The peer is DOWN to us: if it is gone for its clients too, send them to us (REDIRECT). */
  private async redirectClients(self: ServerStatus): Promise<void> {
    if (await (this.d.servesClients ?? answersHeartbeat)(this.clientAddress)) {
      this.d.logger.warn({ peer: this.peer.name, address: this.clientAddress }, "peer is DOWN to us but still answers its clients: a cut link, its clients stay");
      return;
    }
    const n = await store.redirectClientsOf(this.d.db, this.peer.name, self.name, self.address);
    if (n > 0) this.d.logger.info({ peer: this.peer.name, clients: n, to: self.address }, "REDIRECT queued for the clients of a DOWN peer");
  }

  /**
   * A cluster that was revoked is never told (its links are gone): what it sees is every
   * member refusing it with 403 unknown_sender. That is said loudly, once per change, not at
   * every check.
   */
  private noteNotAMember(now: boolean): void {
    if (now === this.notAMember) return;
    this.notAMember = now;
    if (now) this.d.logger.warn({ peer: this.peer.name }, `peer ${this.peer.name} refuses this cluster as not a member (403 unknown_sender): it was revoked there, or never admitted; only a new invite (JOIN) brings it back`);
    else this.d.logger.info({ peer: this.peer.name }, `peer ${this.peer.name} no longer refuses this cluster as not a member`);
  }

  private track(t: Transition): void {
    this.d.metrics.linkUp.set({ peer: this.peer.name }, t.state === "UP" ? 1 : 0);
    if (t.changedFrom === undefined) return;
    const level = t.state === "UP" ? "info" : "warn";
    this.d.logger[level]({ peer: this.peer.name, from: t.changedFrom, to: t.state, ...(t.state === "UP" ? {} : { error: this.lastError }) }, `peer ${this.peer.name} is ${t.state}`);
  }
}
