/**
 * The UDP gateway: one socket, framing checks and rate limits here, everything else in the
 * routers. Datagrams read in one event-loop tick go to the `in` stream as one entry; lines
 * from this gateway's `out` stream go back to the addresses they name. A request the backend
 * leaves unanswered for BACKEND_TIMEOUT_MS gets `ERR UNAVAILABLE` instead of silence.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Bus, BusEntry, Consumer } from "@pesan/shared/bus";
import { GATEWAY_GROUP, IN_STREAM, TOUCH, decodeOutbound, encodeInbound, outStream, type InboundRequest } from "@pesan/shared/bus";
import { Counter, Gauge, type Lifecycle, type Logger, type Registry } from "@pesan/shared/observability";
import { formatErr, frame, parseDatagram, withTag } from "@pesan/shared/protocol";
import { RateLimiter } from "./rate-limit.ts";

export interface GatewayOptions {
  gatewayId: string;
  host: string;
  port: number;
  ratePerSec: number;
  rateBurst: number;
  backendTimeoutMs: number;
  bufferBytes: number;
  maxPack: number;
}

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
  private readonly pending = new Map<number, Pending>();
  private queue: InboundRequest[] = [];
  /** Addresses with a lease-renewing touch already queued in this flush. */
  private readonly touched = new Set<string>();
  private flushScheduled = false;
  private seq = 0;
  private readonly consumer: Consumer;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly m;
  address: { host: string; port: number } | undefined;

  constructor(deps: GatewayDeps, opts: GatewayOptions) {
    this.deps = deps;
    this.opts = opts;
    this.now = deps.now ?? Date.now;
    this.limiter = new RateLimiter(opts.ratePerSec, opts.rateBurst);
    const r = deps.registry;
    this.m = {
      received: new Counter({ name: "pesan_gateway_datagrams_received_total", help: "Datagrams received, by outcome", labelNames: ["outcome"], registers: [r] }),
      sent: new Counter({ name: "pesan_gateway_datagrams_sent_total", help: "Datagrams sent to clients", registers: [r] }),
      unavailable: new Counter({ name: "pesan_gateway_unavailable_total", help: "Requests answered ERR UNAVAILABLE (backend too slow or down)", registers: [r] }),
      pending: new Gauge({ name: "pesan_gateway_pending_requests", help: "Requests forwarded and not yet answered", registers: [r], collect: () => undefined }),
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
    this.deps.logger.info({ gatewayId: this.opts.gatewayId, udp: `${a.address}:${a.port}` }, "gateway listening");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.flush();
    await this.consumer.close();
    await new Promise<void>((resolve) => (this.socket ? this.socket.close(() => resolve()) : resolve()));
  }

  private onDatagram(buf: Buffer, rinfo: RemoteInfo): void {
    const addr = formatAddr(rinfo);
    const verdict = this.limiter.take(addr, this.now());
    if (verdict !== "ok") {
      this.m.received.inc({ outcome: "rate_limited" });
      if (verdict === "limited-first") this.sendTo(addr, formatErr("RATE_LIMITED"));
      return;
    }
    const parsed = parseDatagram(buf);
    if (!parsed.ok) {
      this.m.received.inc({ outcome: "rejected" });
      this.sendTo(addr, withTag(parsed.tag, formatErr(parsed.code, parsed.message)));
      // Answered here, but any datagram renews its sender's session lease: tell the router.
      if (!this.touched.has(addr)) {
        this.touched.add(addr);
        this.enqueue([0, addr, TOUCH]);
      }
      return;
    }
    this.m.received.inc({ outcome: "forwarded" });
    const reqId = ++this.seq;
    // ACK has no reply, so it is never waiting for one.
    if (parsed.req.cmd !== "ACK") this.pending.set(reqId, { addr, tag: parsed.tag, at: this.now() });
    this.enqueue([reqId, addr, buf.toString("utf8")]);
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
    this.touched.clear();
    if (this.queue.length === 0) return;
    const reqs = this.queue;
    this.queue = [];
    this.deps.bus.publish([{ stream: this.deps.bus.key(IN_STREAM), payload: encodeInbound(this.opts.gatewayId, reqs) }]).catch((err: unknown) => {
      // The sweep answers these requests ERR UNAVAILABLE when their time is up.
      this.deps.logger.warn({ err, requests: reqs.length }, "could not forward to the bus");
    });
  }

  private async deliver(entries: BusEntry[]): Promise<void> {
    for (const e of entries) {
      for (const [addr, line, reqId] of decodeOutbound(e.payload)) {
        if (reqId > 0) this.pending.delete(reqId);
        this.sendTo(addr, line);
      }
    }
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
      this.sendTo(p.addr, withTag(p.tag, formatErr("UNAVAILABLE")));
    }
    this.m.pending.set(this.pending.size);
    this.limiter.sweep(now);
  }

  pendingCount(): number {
    return this.pending.size;
  }
}
