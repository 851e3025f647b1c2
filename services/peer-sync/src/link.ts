/**
 * One link, from our side: checks the peer every interval and keeps its server_list row and
 * link metrics in step with the answers. The first successful exchange after start, and after
 * each time the peer was DOWN, is an announce (the peer may have come back with an empty
 * database); the others are hellos.
 */
import type { Db } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import type { PeerConfig } from "./config.ts";
import { PATHS, PROTOCOL_VERSION, statusReply, type ServerStatus } from "./frames.ts";
import { Liveness, type LinkState, type Transition } from "./liveness.ts";
import { Loop } from "@pesan/shared/observability";
import type { PeerSyncMetrics } from "./metrics.ts";
import * as store from "./store.ts";

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
  clock?: () => Date;
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
  /** What the server_list row says, as far as we know: a failed write is retried next round. */
  private rowActive: boolean | undefined;

  constructor(peer: PeerConfig, o: LinkOptions, d: LinkDeps) {
    this.name = `link-${peer.name}`;
    this.peer = peer;
    this.d = d;
    this.clock = d.clock ?? (() => new Date());
    this.liveness = new Liveness(o.failuresToDown);
    this.loop = new Loop(this.name, o.intervalMs, () => this.checkOnce(), d.logger, { immediate: true });
  }

  get state(): LinkState {
    return this.liveness.state;
  }

  get up(): boolean {
    return this.liveness.state === "UP";
  }

  /** For /healthz: the state and, while not UP, the last failure. */
  describe(): { state: LinkState; failures: number; error?: string } {
    return this.up ? { state: "UP", failures: 0 } : { state: this.state, failures: this.liveness.failures, ...(this.lastError ? { error: this.lastError } : {}) };
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
      this.lastError = (e as Error).message;
      this.d.metrics.checks.inc({ peer: this.peer.name, outcome: "fail" });
      const t = this.liveness.failure();
      this.track(t);
      if (t.state === "DOWN") {
        this.announced = false;
        if (this.rowActive !== false) {
          await store.markDown(this.d.db, this.peer.name);
          this.rowActive = false;
        }
      }
      return;
    }
    this.d.metrics.helloSeconds.observe({ peer: this.peer.name }, Number(process.hrtime.bigint() - started) / 1e9);
    this.d.metrics.checks.inc({ peer: this.peer.name, outcome: "ok" });
    this.lastError = "";
    this.announced = true;
    this.track(this.liveness.success());
    await store.markUp(this.d.db, this.peer.name, status, this.peer.proximity, this.clock());
    this.rowActive = true;
  }

  private track(t: Transition): void {
    this.d.metrics.linkUp.set({ peer: this.peer.name }, t.state === "UP" ? 1 : 0);
    if (t.changedFrom === undefined) return;
    const level = t.state === "UP" ? "info" : "warn";
    this.d.logger[level]({ peer: this.peer.name, from: t.changedFrom, to: t.state, ...(t.state === "UP" ? {} : { error: this.lastError }) }, `peer ${this.peer.name} is ${t.state}`);
  }
}
