/**
 * The messaging probe: a probe account sends itself a message through a gateway and times the
 * round trip, as a user would see it (gateway, bus, router, database, and back).
 *   OK       the MSG came back within expiry; delay = SEND sent -> MSG received
 *   FAIL     LOGIN/REGISTER/SEND answered an error, or nothing at all within the timeout
 *   EXPIRED  SEND was accepted but the MSG did not come back within expiry
 * The account is registered on first use and the session kept between runs (a LOGIN costs
 * the router a slow password hash). Each probe message is deleted once received, so the probe
 * does not fill the messages table.
 */
import { randomBytes } from "node:crypto";
import { PesanClient, PesanError, type MsgLine } from "@pesan/client";
import type { Logger } from "@pesan/shared/observability";
import type { MessagingConfig } from "../config/config.ts";
import type { Monitor, MessagingStatus } from "../monitor.ts";
import { Every } from "./schedule.ts";

export type MessagingSink = Pick<Monitor, "messaging">;
export type ClientFactory = (servers: string[], requestTimeoutMs: number) => PesanClient;

export const defaultClientFactory: ClientFactory = (servers, requestTimeoutMs) =>
  // No heartbeat, no following ERR FULL: the probe talks to this one gateway and must not
  // fail over or move elsewhere (a full gateway is what it reports).
  new PesanClient({ servers, heartbeatMs: 0, requestTimeoutMs, followFull: false });

const PROBE_PREFIX = "pesan-monitor probe ";

export interface MessagingProbeDeps {
  sink: MessagingSink;
  logger: Logger;
  createClient?: ClientFactory;
}

export interface ProbeOutcome {
  status: MessagingStatus;
  delayMs: number | null;
  detail: string;
}

export class MessagingProbe {
  readonly name: string;
  private readonly cfg: MessagingConfig;
  private readonly deps: MessagingProbeDeps;
  private readonly loop: Every;
  private client: PesanClient | undefined;
  private registered = false;
  private closing = false;
  private stop: () => void = () => undefined;
  /** Resolves on close(), so a run waiting out its expiry ends at once. */
  private readonly stopped = new Promise<undefined>((resolve) => {
    this.stop = () => resolve(undefined);
  });

  constructor(cfg: MessagingConfig, deps: MessagingProbeDeps) {
    this.name = `messaging:${cfg.name}`;
    this.cfg = cfg;
    this.deps = deps;
    this.loop = new Every(this.name, cfg.intervalMs, () => this.run(), deps.logger);
  }

  async start(): Promise<void> {
    await this.loop.start();
  }

  async run(): Promise<void> {
    const started = performance.now();
    let outcome: ProbeOutcome;
    try {
      outcome = await this.once();
    } catch (e) {
      outcome = { status: "FAIL", delayMs: null, detail: (e as Error).message || String(e) };
      // A fresh socket next time: whatever state the old one had is suspect.
      await this.dropClient();
    }
    if (this.closing) return;
    this.deps.sink.messaging(this.cfg.name, outcome.status, outcome.delayMs, this.cfg.expiryMs, performance.now() - started, outcome.detail);
  }

  /** One probe. Throws for FAIL. */
  async once(): Promise<ProbeOutcome> {
    const client = await this.getClient();
    if (!client.session) await this.login(client);
    try {
      return await this.roundTrip(client);
    } catch (e) {
      // The session may have expired or been replaced since the last run: log in once more.
      if (!(e instanceof PesanError && e.code === "NOT_LOGGED_IN")) throw e;
      await this.login(client);
      return await this.roundTrip(client);
    }
  }

  private async roundTrip(client: PesanClient): Promise<ProbeOutcome> {
    const nonce = randomBytes(8).toString("hex");
    let onMessage: ((m: MsgLine) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    // Listening starts before SEND, so a fast MSG cannot slip past.
    const arrived = new Promise<number | undefined>((resolve) => {
      onMessage = (m: MsgLine) => {
        if (!m.text.startsWith(PROBE_PREFIX)) return;
        this.forget(client, m.id);
        if (m.text === `${PROBE_PREFIX}${nonce}`) resolve(performance.now());
      };
      client.on("message", onMessage);
    });
    try {
      const sentAt = performance.now();
      const expiry = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), this.cfg.expiryMs);
      });
      await client.send(this.cfg.user, `${PROBE_PREFIX}${nonce}`, { timeoutMs: this.cfg.timeoutMs });
      const at = await Promise.race([arrived, expiry, this.stopped]);
      if (at === undefined) return { status: "EXPIRED", delayMs: null, detail: `SEND accepted but no MSG within ${this.cfg.expiryMs} ms` };
      return { status: "OK", delayMs: at - sentAt, detail: "" };
    } finally {
      clearTimeout(timer);
      if (onMessage) client.off("message", onMessage);
    }
  }

  private async login(client: PesanClient): Promise<void> {
    const opts = { timeoutMs: this.cfg.timeoutMs };
    try {
      await client.login(this.cfg.user, this.cfg.password, opts);
      this.registered = true;
    } catch (e) {
      if (!(e instanceof PesanError && e.code === "AUTH") || this.registered) throw e;
      // First use: the account does not exist yet (AUTH is also the answer for an unknown user).
      try {
        await client.register(this.cfg.user, this.cfg.password, opts);
        this.deps.logger.info({ probe: this.cfg.name, user: this.cfg.user }, "probe account registered");
      } catch (re) {
        if (re instanceof PesanError && re.code === "TAKEN") throw new Error(`LOGIN ${this.cfg.user}: wrong password, and the name is taken (not the probe's account?)`);
        throw re;
      }
      this.registered = true;
      await client.login(this.cfg.user, this.cfg.password, opts);
    }
  }

  /** Deletes a probe message; failures only leave a row behind. */
  private forget(client: PesanClient, id: string): void {
    void client.request(`DELETE ${id}`, { timeoutMs: this.cfg.timeoutMs }).catch(() => undefined);
  }

  private async getClient(): Promise<PesanClient> {
    if (this.client) return this.client;
    const client = (this.deps.createClient ?? defaultClientFactory)([this.cfg.gateway], this.cfg.timeoutMs);
    client.on("error", (err) => this.deps.logger.debug({ probe: this.cfg.name, err: err.message }, "probe client error"));
    this.client = client;
    await client.start();
    return client;
  }

  private async dropClient(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.close();
  }

  async close(): Promise<void> {
    this.closing = true;
    this.stop();
    const c = this.client;
    // Closing the client first rejects a request in flight, so the loop ends at once.
    await c?.close();
    await this.loop.close();
    this.client = undefined;
  }
}
