/**
 * The UDP gateway: one socket, framing checks and rate limits here, everything else in the
 * routers. Datagrams read in one event-loop tick go to the `in` stream as one entry; lines
 * from this gateway's `out` stream go back to the addresses they name. A request the backend
 * leaves unanswered for BACKEND_TIMEOUT_MS gets `ERR UNAVAILABLE` instead of silence.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Bus, BusEntry, Consumer } from "@pesan/shared/bus";
import { BusUnavailableError, BIND, GATEWAY_GROUP, inStreamOf, UNBIND, WITHHELD, decodeOutbound, encodeInbound, isControlLine, outStream, type InboundRequest } from "@pesan/shared/bus";
import { Counter, Gauge, type Logger, type Registry } from "@pesan/shared/observability";
import type { Lifecycle } from "@pesan/shared/runtime";
import { PROOF_PREFIX, formatErr, frame, parseDatagram, parseText, withTag, type Parsed } from "@pesan/shared/protocol";
import { Endpoints } from "./endpoints.ts";
import { RateLimiter } from "@pesan/shared/rate-limit";

export interface GatewayOptions {
  gatewayId: string;
  /** BUS_SHARDS: the `in` stream's shards; this gateway publishes to one of them (inStreamOf). Default 1. */
  busShards?: number;
  host: string;
  port: number;
  ratePerSec: number;
  rateBurst: number;
  backendTimeoutMs: number;
  bufferBytes: number;
  maxPack: number;
  /** Datagrams per second (and burst) from all the addresses of one IP that hold no session. */
  ipRatePerSec: number;
  ipRateBurst: number;
  /** Bytes per second that plain sessions and REDIRECTs of one IP may get beyond the 3x credit. */
  plainBytesPerIp: number;
  /** Most session-less addresses remembered (for the amplification credit). */
  maxEndpoints: number;
  /** Entries the in stream may hold before new requests get ERR UNAVAILABLE (IN_STREAM_MAX_LEN); 0: unchecked. */
  inStreamMaxLen: number;
}

/** How often the in stream's length is read (XLEN): often enough to stop in time, never per datagram. */
export const IN_STREAM_CHECK_MS = 200;

/** The publish certainly wrote nothing (refused before sending, or Redis at maxmemory). */
function notWritten(err: unknown): boolean {
  return err instanceof BusUnavailableError || /^OOM /.test(String((err as Error)?.message ?? ""));
}

/** The reply to a datagram whose session proof does not hold (docs/protocol.md "Security"). */
export const PROOF_INVALID_TEXT = "proof not valid for this address; RESUME";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const TILDE = PROOF_PREFIX.charCodeAt(0);

export interface GatewayDeps {
  bus: Bus;
  logger: Logger;
  registry: Registry;
  now?: () => number;
}

interface Pending {
  addr: string;
  tag: string | undefined;
  at: number;
}

export function formatAddr(r: Pick<RemoteInfo, "address" | "port" | "family">): string {
  return r.family === "IPv6" ? `[${r.address}]:${r.port}` : `${r.address}:${r.port}`;
}

export function splitAddr(addr: string): { host: string; port: number } | undefined {
  const i = addr.lastIndexOf(":");
  if (i <= 0) return undefined;
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const port = Number(addr.slice(i + 1));
  return Number.isInteger(port) && port > 0 && port < 65536 ? { host, port } : undefined;
}

export class Gateway implements Lifecycle {
  readonly name = "udp-gateway";
  private readonly deps: GatewayDeps;
  private readonly opts: GatewayOptions;
  private readonly now: () => number;
  private socket: Socket | undefined;
  private readonly limiter: RateLimiter;
  private readonly ipLimiter: RateLimiter;
  private readonly endpoints: Endpoints;
  private readonly pending = new Map<number, Pending>();
  private queue: InboundRequest[] = [];
  private flushScheduled = false;
  private endpointsSweptAt = 0;
  private seq = 0;
  private readonly consumer: Consumer;
  /** The `in` shard this gateway publishes to (the full key). */
  private readonly inStream: string;
  private sweeper: NodeJS.Timeout | undefined;
  private inStreamTimer: NodeJS.Timeout | undefined;
  /** The in stream's length at the last check; at or over inStreamMaxLen, requests are refused. */
  private inStreamLength = 0;
  private checkingInStream = false;
  private publishErrorLoggedAt = 0;
  private closed = false;
  private readonly m;
  address: { host: string; port: number } | undefined;

  constructor(deps: GatewayDeps, opts: GatewayOptions) {
    this.inStream = deps.bus.key(inStreamOf(opts.gatewayId, opts.busShards ?? 1));
    this.deps = deps;
    this.opts = opts;
    this.now = deps.now ?? Date.now;
    this.limiter = new RateLimiter(opts.ratePerSec, opts.rateBurst);
    this.ipLimiter = new RateLimiter(opts.ipRatePerSec, opts.ipRateBurst);
    this.endpoints = new Endpoints({ maxEndpoints: opts.maxEndpoints, idleMs: 60_000, sessionIdleMs: 600_000, plainBytesPerIp: opts.plainBytesPerIp });
    const r = deps.registry;
    this.m = {
      received: new Counter({ name: "pesan_gateway_datagrams_received_total", help: "Datagrams received, by outcome", labelNames: ["outcome"], registers: [r] }),
      sent: new Counter({ name: "pesan_gateway_datagrams_sent_total", help: "Datagrams sent to clients", registers: [r] }),
      unavailable: new Counter({ name: "pesan_gateway_unavailable_total", help: "Requests answered ERR UNAVAILABLE (backend too slow or down)", registers: [r] }),
      pending: new Gauge({ name: "pesan_gateway_pending_requests", help: "Requests forwarded and not yet answered", registers: [r], collect: () => undefined }),
      withheld: new Counter({ name: "pesan_gateway_withheld_total", help: "Lines not sent to an address that has not shown it receives (amplification bound), by kind", labelNames: ["kind"], registers: [r] }),
      endpoints: new Gauge({ name: "pesan_gateway_endpoints", help: "Client addresses remembered (sessions and recent senders)", registers: [r], collect: () => undefined }),
      inStream: new Gauge({ name: "pesan_in_stream_length", help: "Entries in the in stream at the last check (routers down or behind make it grow)", registers: [r] }),
      refused: new Counter({
        name: "pesan_gateway_refused_total",
        help: "Requests answered ERR UNAVAILABLE at once, not forwarded, by reason (in_stream_full, bus_unavailable)",
        labelNames: ["reason"],
        registers: [r],
      }),
    };
    this.consumer = deps.bus.consumer(
      {
        stream: deps.bus.key(outStream(opts.gatewayId)),
        group: GATEWAY_GROUP,
        consumer: opts.gatewayId,
        count: 256,
        blockMs: 1000,
        claimIdleMs: 5000,
        deleteOnAck: true,
        // Sending a datagram cannot fail for a reason worth retrying; anything else is a bug.
        isTransient: () => false,
      },
      (entries) => this.deliver(entries),
      deps.logger,
    );
  }

  async start(): Promise<void> {
    const type = this.opts.host.includes(":") ? "udp6" : "udp4";
    const socket = createSocket({ type, recvBufferSize: this.opts.bufferBytes, sendBufferSize: this.opts.bufferBytes });
    this.socket = socket;
    socket.on("message", (buf, rinfo) => this.onDatagram(buf, rinfo));
    socket.on("error", (err) => this.deps.logger.error({ err }, "udp socket error"));
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(this.opts.port, this.opts.host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    const a = socket.address();
    this.address = { host: a.address, port: a.port };
    await this.consumer.start();
    this.sweeper = setInterval(() => this.sweep(), Math.min(250, this.opts.backendTimeoutMs / 4));
    if (this.opts.inStreamMaxLen > 0) this.inStreamTimer = setInterval(() => void this.checkInStream(), IN_STREAM_CHECK_MS);
    this.deps.logger.info({ gatewayId: this.opts.gatewayId, udp: `${a.address}:${a.port}` }, "gateway listening");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    clearInterval(this.inStreamTimer);
    this.flush();
    await this.consumer.close();
    await new Promise<void>((resolve) => (this.socket ? this.socket.close(() => resolve()) : resolve()));
  }

  private onDatagram(buf: Buffer, rinfo: RemoteInfo): void {
    const now = this.now();
    const addr = formatAddr(rinfo);
    if (!this.admit(this.limiter.take(addr, now), addr, "rate_limited")) return;
    // Addresses without a session also share one budget per IP: rotating source ports buys nothing.
    if (!this.endpoints.hasSession(addr) && !this.admit(this.ipLimiter.take(rinfo.address, now), addr, "ip_limited")) return;
    const endpoint = this.endpoints.received(addr, buf.length, now);
    let parsed: Parsed;
    let text: string;
    let proof: string | undefined;
    if (buf[0] === TILDE) {
      let raw: string;
      try {
        raw = utf8.decode(buf);
      } catch {
        return this.reject(addr, parseDatagram(buf));
      }
      const v = this.endpoints.checkProof(endpoint, raw);
      if (v.kind === "replayed") {
        this.m.received.inc({ outcome: "replayed" });
        return;
      }
      if (v.kind === "invalid") {
        this.m.received.inc({ outcome: "proof_invalid" });
        this.reply(addr, withTag(parseText(v.text).tag, formatErr("NOT_LOGGED_IN", PROOF_INVALID_TEXT)));
        return;
      }
      text = v.text;
      parsed = parseText(text);
      if (v.kind === "proven") proof = v.keyId;
    } else {
      parsed = parseDatagram(buf);
      text = parsed.ok ? buf.toString("utf8") : "";
    }
    // Answered here; it no longer renews a session lease (a forged datagram must not).
    if (!parsed.ok) return this.reject(addr, parsed);
    if (this.inStreamFull()) {
      this.m.received.inc({ outcome: "refused" });
      this.m.refused.inc({ reason: "in_stream_full" });
      // ACK has no reply; its message is resent and stays undelivered, nothing is lost.
      if (parsed.req.cmd !== "ACK") this.reply(addr, withTag(parsed.tag, formatErr("UNAVAILABLE", "server busy, try again later or use another server")));
      return;
    }
    this.m.received.inc({ outcome: "forwarded" });
    const reqId = ++this.seq;
    // ACK has no reply, so it is never waiting for one.
    if (parsed.req.cmd !== "ACK") this.pending.set(reqId, { addr, tag: parsed.tag, at: now });
    this.enqueue(proof === undefined ? [reqId, addr, text] : [reqId, addr, text, proof]);
  }

  /**
   * The routers are down or far behind: the stream holds inStreamMaxLen entries or more. New
   * requests are not added (XADD MAXLEN would drop accepted ones instead); the ones accepted
   * are all still there and are processed when a router is back.
   */
  private inStreamFull(): boolean {
    return this.opts.inStreamMaxLen > 0 && this.inStreamLength >= this.opts.inStreamMaxLen;
  }

  private async checkInStream(): Promise<void> {
    if (this.checkingInStream) return;
    this.checkingInStream = true;
    try {
      this.inStreamLength = await this.deps.bus.streamLength(this.inStream);
      this.m.inStream.set(this.inStreamLength);
    } catch {
      // Redis away: publishing fails fast meanwhile; the last length stands until it answers.
    } finally {
      this.checkingInStream = false;
    }
  }

  /** Applies a rate limiter's verdict: the first datagram over the limit is told, the rest dropped. */
  private admit(verdict: "ok" | "limited-first" | "limited", addr: string, outcome: string): boolean {
    if (verdict === "ok") return true;
    this.m.received.inc({ outcome });
    if (verdict === "limited-first") this.reply(addr, formatErr("RATE_LIMITED"));
    return false;
  }

  private reject(addr: string, parsed: Parsed): void {
    this.m.received.inc({ outcome: "rejected" });
    if (!parsed.ok) this.reply(addr, withTag(parsed.tag, formatErr(parsed.code, parsed.message)));
  }

  private enqueue(r: InboundRequest): void {
    this.queue.push(r);
    if (this.queue.length >= this.opts.maxPack) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** One stream entry for everything read since the last flush. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const reqs = this.queue;
    this.queue = [];
    this.deps.bus.publish([{ stream: this.inStream, payload: encodeInbound(this.opts.gatewayId, reqs) }]).catch((err: unknown) => {
      if (notWritten(err)) {
        // Nothing of it reached Redis: answer now (the client may retry at once, here or
        // elsewhere) rather than at the deadline; nothing waits in memory for the outage.
        this.m.refused.inc({ reason: "bus_unavailable" }, reqs.length);
        for (const [reqId] of reqs) {
          const p = this.pending.get(reqId);
          if (!p) continue;
          this.pending.delete(reqId);
          this.m.unavailable.inc();
          this.reply(p.addr, withTag(p.tag, formatErr("UNAVAILABLE")));
        }
      }
      // Otherwise the sweep answers these requests ERR UNAVAILABLE when their time is up.
      // One line per 10 s at most: an outage under load fails a publish every tick.
      const now = Date.now();
      if (now - this.publishErrorLoggedAt >= 10_000) {
        this.publishErrorLoggedAt = now;
        this.deps.logger.warn({ err, requests: reqs.length }, "could not forward to the bus");
      }
    });
  }

  private async deliver(entries: BusEntry[]): Promise<void> {
    for (const e of entries) {
      for (const [addr, line, reqId] of decodeOutbound(e.payload)) {
        if (reqId > 0) this.pending.delete(reqId);
        if (isControlLine(line)) this.control(addr, line);
        else if (reqId > 0) this.reply(addr, line);
        else this.push(addr, line);
      }
    }
  }

  /** A router's word about the session at addr: bound with a proof key, or ended. */
  private control(addr: string, line: string): void {
    if (line.startsWith(BIND)) {
      const [keyId, key, plain] = line.slice(BIND.length).split(" ");
      if (keyId && key) this.endpoints.bind(addr, keyId, key, plain === "1", this.now());
    } else if (line === UNBIND) this.endpoints.unbind(addr);
  }

  /** A reply to something addr sent: within the amplification bound, or not at all (it may ask again). */
  private reply(addr: string, line: string): void {
    const now = this.now();
    if (this.endpoints.send(addr, Buffer.byteLength(line) + 1, false, now) !== "withheld") return this.sendTo(addr, line);
    // An error's code alone still tells the client what happened (UNAVAILABLE, RATE_LIMITED):
    // when the human text does not fit the bound, the code may.
    const short = /^((?:@\S+ )?ERR [A-Z_]+) /.exec(line)?.[1];
    if (short !== undefined && this.endpoints.send(addr, Buffer.byteLength(short) + 1, false, now) !== "withheld") return this.sendTo(addr, short);
    this.m.withheld.inc({ kind: "reply" });
  }

  /**
   * A push (MSG, ONLINE, BYE, REDIRECT). A one-to-one MSG that the bound withholds is reported
   * to the routers, which keep it undelivered: it is pushed again later, never lost.
   */
  private push(addr: string, line: string): void {
    const redirect = line.startsWith("REDIRECT ");
    if (this.endpoints.send(addr, Buffer.byteLength(line) + 1, redirect, this.now()) !== "withheld") return this.sendTo(addr, line);
    this.m.withheld.inc({ kind: "push" });
    if (!line.startsWith("MSG ")) return;
    const [, id, from] = line.split(" ", 3);
    if (id && from && !from.startsWith("*")) this.enqueue([0, addr, WITHHELD + id]);
  }

  private sendTo(addr: string, line: string): void {
    const to = splitAddr(addr);
    if (!to || !this.socket || this.closed) return;
    this.socket.send(frame(line), to.port, to.host, (err) => {
      if (err) this.deps.logger.debug({ err, addr }, "send failed");
    });
    this.m.sent.inc();
  }

  /** Answers requests the backend has left waiting too long; oldest first, so it stops early. */
  private sweep(): void {
    const now = this.now();
    const limit = now - this.opts.backendTimeoutMs;
    for (const [id, p] of this.pending) {
      if (p.at > limit) break;
      this.pending.delete(id);
      this.m.unavailable.inc();
      this.reply(p.addr, withTag(p.tag, formatErr("UNAVAILABLE")));
    }
    this.m.pending.set(this.pending.size);
    this.limiter.sweep(now);
    this.ipLimiter.sweep(now);
    // A full pass over every address is not needed four times a second.
    if (now - this.endpointsSweptAt >= 5000) {
      this.endpointsSweptAt = now;
      this.endpoints.sweep(now);
    }
    this.m.endpoints.set(this.endpoints.size);
  }

  pendingCount(): number {
    return this.pending.size;
  }
}
