/**
 * The one UDP transport of pesan's clients: the library (and so the CLI and the monitor's
 * probe), the bench, the tests' raw client and the heartbeat check all talk through it.
 *
 * One socket talks to one target server. Requests are tagged (`@<tag> <line>`) and resolve with
 * every line carrying their tag, the final one last, or reject after their timeout. While the
 * transport holds a session key (protocol v2, docs/protocol.md "Security") every datagram it
 * sends through send()/request() goes out as `~<seq>.<mac> <datagram>`; sendBytes() sends bytes
 * exactly as given (what netcat would), for tests and tools that need that.
 *
 * Whose reply is it: by default a tagged line answers a request only when it comes from the
 * exact address the request went to (a host name is resolved once per target, so the sender
 * can be compared), and every datagram is handed to onDatagram with `fromTarget`, so the owner
 * can refuse pushes from anyone but its server.
 */
import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { randomBytes } from "node:crypto";
import { isProofKey, parseServerLine, ProofSigner, unframe, type ServerLine } from "@pesan/shared/protocol";
import { formatServerAddress, normalizeIp, parseServerAddress, type ServerAddress } from "./address.ts";
import { ClientClosedError, RequestTimeoutError } from "./errors.ts";

export const TAG_RE = /^[A-Za-z0-9_-]{1,32}$/;

/** Tagged lines of these kinds are followed by more lines for the same request. */
const INTERMEDIATE = new Set<ServerLine["kind"]>(["ONLINE", "ITEM", "SERVER"]);

export interface TransportOptions {
  /** `host:port` or `[ipv6]:port`. The socket family follows it. */
  target: string;
  /** Local address to bind (default: any). */
  bindHost?: string;
  recvBufferSize?: number;
  sendBufferSize?: number;
  /**
   * Match a tagged reply to its request whatever address it came from (default false: only
   * from the address the request went to). For netcat-like test clients.
   */
  matchAnySource?: boolean;
  /**
   * Handle session keys by itself (default false; the library does it in its state machine):
   * an `OK LOGIN <user> <token> <key>` answering one of its requests from the target installs
   * the key and sends one proven `PING` (so the server validates the address at once), an
   * `OK LOGIN` without a key, `OK BYE`, `OK UNREGISTERED` or a `BYE` push drops it.
   */
  autoProof?: boolean;
  /** Every datagram received, before the request it answers (if any) resolves. */
  onDatagram?: (d: Datagram) => void;
  /** Socket errors and failed background sends. */
  onError?: (err: Error) => void;
  /** Sees every datagram first; false drops it (tests simulate loss on the way in). */
  inbound?: (buf: Buffer, from: dgram.RemoteInfo) => boolean;
}

export interface TransportRequestOptions {
  timeoutMs: number;
  /** The tag to send instead of a fresh one (a retry with the same tag is not acted on twice). */
  tag?: string;
  /** A request the owner makes by itself (heartbeat, CAP ACK, RESUME): its tag says so. */
  internal?: boolean;
}

export interface SentRequest {
  tag: string;
  line: string;
  internal: boolean;
  /** `host:port` it was sent to (name resolved). */
  to: string;
}

export interface Datagram {
  /** The text, framing removed (may be empty: what a UDP proxy sends when its upstream dies). */
  text: string;
  /** The parsed line; undefined for an empty datagram. */
  line: ServerLine | undefined;
  /** `host:port` it came from. */
  from: string;
  /** It came from the exact address datagrams go to now. */
  fromTarget: boolean;
  /** The waiting request it answers, if any. */
  answers: SentRequest | undefined;
}

interface Pending {
  req: SentRequest;
  lines: ServerLine[];
  resolve: (lines: ServerLine[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

type TransportState = "new" | "binding" | "open" | "closed";

/** The session key an `OK LOGIN <user> <token> <key>` carries, if it is a valid one. */
export function loginKey(line: ServerLine): string | undefined {
  if (line.kind !== "OK" || line.word !== "LOGIN") return undefined;
  const k = line.args[2];
  return k !== undefined && isProofKey(k) ? k : undefined;
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class Transport {
  readonly family: "udp4" | "udp6";
  private readonly opts: TransportOptions;
  private state: TransportState = "new";
  private socket: dgram.Socket | undefined;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private targetAddr: ServerAddress;
  private targetName: string;
  /** The target's IP (normalized), once known: what a datagram from it carries as sender. */
  private resolvedHost: string | undefined;
  /** `resolvedHost:port`, the identity replies and pushes are compared with. */
  private identity: string | undefined;
  private ready: Promise<void> = Promise.resolve();
  private readonly tagPrefix = randomBytes(4).toString("hex");
  private tagCounter = 0;
  private readonly pending = new Map<string, Pending>();
  private signer: ProofSigner | undefined;

  constructor(opts: TransportOptions) {
    this.opts = opts;
    this.targetAddr = parseServerAddress(opts.target);
    this.targetName = formatServerAddress(this.targetAddr.host, this.targetAddr.port);
    this.family = this.targetAddr.host.includes(":") ? "udp6" : "udp4";
    if (isIP(this.targetAddr.host)) this.setResolved(this.targetAddr.host);
  }

  /** The target as given (`host:port`). */
  get target(): string {
    return this.targetName;
  }

  /** Whether `from` (`host:port` of a received datagram) is the target's exact address. */
  isTarget(from: string): boolean {
    return this.identity !== undefined && from === this.identity;
  }

  get localPort(): number | undefined {
    try {
      return this.socket?.address().port;
    } catch {
      return undefined;
    }
  }

  get isClosed(): boolean {
    return this.state === "closed";
  }

  /** The session key in use, if any. */
  get key(): string | undefined {
    return this.signer?.key;
  }

  /** Sign from now on with this key (a fresh counter, from 1), or send plain (undefined). */
  useKey(key: string | undefined): void {
    if (key !== undefined && !isProofKey(key)) throw new Error("Transport: not a session key");
    this.signer = key === undefined ? undefined : new ProofSigner(key);
  }

  /** Binds the socket and resolves the target's name. */
  start(): Promise<void> {
    if (this.state === "closed") return Promise.reject(new ClientClosedError());
    this.starting ??= this.bind();
    return this.starting;
  }

  private async bind(): Promise<void> {
    this.state = "binding";
    const socket = dgram.createSocket({
      type: this.family,
      ...(this.opts.recvBufferSize !== undefined ? { recvBufferSize: this.opts.recvBufferSize } : {}),
      ...(this.opts.sendBufferSize !== undefined ? { sendBufferSize: this.opts.sendBufferSize } : {}),
    });
    this.socket = socket;
    socket.on("message", (buf, rinfo) => this.onMessage(buf, rinfo));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      socket.once("error", onError);
      socket.once("close", () => resolve()); // close() during bind
      socket.bind(0, this.opts.bindHost, () => {
        socket.off("error", onError);
        resolve();
      });
    }).catch((err: unknown) => {
      this.socket = undefined;
      try {
        socket.close();
      } catch {
        // already closed
      }
      throw err;
    });
    if ((this.state as TransportState) === "closed") return; // close() ran during the bind
    socket.on("error", (err) => this.report(err));
    this.state = "open";
    if (this.identity === undefined) await this.resolveTarget();
  }

  /**
   * Sends to another server from now on. The key is dropped (a key is valid only where it was
   * issued). Requests still waiting keep waiting for their own server's reply. Resolves once the
   * new name is resolved (at once for an IP).
   */
  retarget(address: string): Promise<void> {
    this.targetAddr = parseServerAddress(address);
    this.targetName = formatServerAddress(this.targetAddr.host, this.targetAddr.port);
    this.signer = undefined;
    this.identity = undefined;
    this.resolvedHost = undefined;
    if (isIP(this.targetAddr.host)) {
      this.setResolved(this.targetAddr.host);
      this.ready = Promise.resolve();
    } else if (this.state === "open") {
      void this.resolveTarget();
    }
    return this.ready;
  }

  private setResolved(ip: string): void {
    this.resolvedHost = normalizeIp(ip);
    this.identity = formatServerAddress(this.resolvedHost, this.targetAddr.port);
  }

  private resolveTarget(): Promise<void> {
    const a = this.targetAddr;
    this.ready = lookup(a.host, { family: this.family === "udp6" ? 6 : 4 }).then(
      (r) => {
        if (this.targetAddr === a) this.setResolved(r.address);
      },
      (err: unknown) => {
        if (this.targetAddr === a) this.report(new Error(`cannot resolve ${a.host}: ${toError(err).message}`));
      },
    );
    return this.ready;
  }

  /** Stops everything: pending requests reject with ClientClosedError. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.state = "closed";
    for (const [tag, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(tag);
      p.reject(new ClientClosedError());
    }
    const socket = this.socket;
    this.closing = new Promise<void>((resolve) => {
      if (!socket) return resolve();
      try {
        socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
    return this.closing;
  }

  nextTag(internal: boolean): string {
    this.tagCounter += 1;
    return `${this.tagPrefix}${internal ? "i" : "u"}${this.tagCounter}`;
  }

  /** The tag is one this transport generated. */
  isOwnTag(tag: string | undefined): boolean {
    return tag !== undefined && tag.length > this.tagPrefix.length + 1 && tag.startsWith(this.tagPrefix) && /[iu]/.test(tag[this.tagPrefix.length]!);
  }

  isInternalTag(tag: string | undefined): boolean {
    return this.isOwnTag(tag) && tag![this.tagPrefix.length] === "i";
  }

  /** Throws when the datagram cannot be sent at all (closed, not started). */
  private assertOpen(): void {
    if (this.state === "closed") throw new ClientClosedError();
    if (this.state !== "open" || !this.socket) throw new Error("call start() first");
  }

  /** Sends one datagram to the target, signed while a key is held. Errors go to onError. */
  send(text: string): void {
    this.assertOpen();
    this.transmit(this.signer ? this.signer.sign(text) : text, (err) => this.report(err));
  }

  /** Sends exactly these bytes to the target: never signed. */
  sendBytes(data: string | Buffer): void {
    this.assertOpen();
    this.transmit(data, (err) => this.report(err));
  }

  private transmit(data: string | Buffer, onError: (err: Error) => void): void {
    const socket = this.socket!;
    const a = this.targetAddr;
    const go = (): void => {
      if (this.state === "closed") return onError(new ClientClosedError());
      const host = this.targetAddr === a && this.resolvedHost !== undefined ? this.resolvedHost : a.host;
      try {
        socket.send(data, a.port, host, (err) => {
          if (err) onError(err);
        });
      } catch (err) {
        onError(toError(err));
      }
    };
    if (this.identity !== undefined) go();
    else void this.ready.then(go);
  }

  /**
   * Sends `@<tag> <line>` and resolves with every line carrying that tag, the final one (OK,
   * ERR, yes, MSG, ...) last; tagged ONLINE/ITEM/SERVER lines are intermediate. Rejects with
   * RequestTimeoutError when the final line does not come in time.
   */
  async request(line: string, o: TransportRequestOptions): Promise<ServerLine[]> {
    this.assertOpen();
    if (o.tag !== undefined && !TAG_RE.test(o.tag)) throw new Error(`a tag is 1-32 of A-Z a-z 0-9 _ - (got ${JSON.stringify(o.tag)})`);
    if (this.identity === undefined) await this.ready;
    this.assertOpen();
    const tag = o.tag ?? this.nextTag(o.internal ?? false);
    if (this.pending.has(tag)) throw new Error(`a request tagged ${tag} is already waiting`);
    const to = this.identity ?? this.targetName;
    const server = this.targetName;
    const payload = `@${tag} ${line}`;
    const datagram = this.signer ? this.signer.sign(payload) : payload;
    return new Promise<ServerLine[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tag);
        reject(new RequestTimeoutError(line, server, o.timeoutMs));
      }, o.timeoutMs);
      timer.unref();
      this.pending.set(tag, { req: { tag, line, internal: o.internal ?? false, to }, lines: [], resolve, reject, timer });
      this.transmit(datagram, (err) => {
        const p = this.pending.get(tag);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(tag);
        reject(err);
      });
    });
  }

  private onMessage(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.state === "closed") return;
    if (this.opts.inbound && !this.opts.inbound(buf, rinfo)) return;
    const text = unframe(buf.toString("utf8"));
    const from = formatServerAddress(rinfo.address, rinfo.port);
    const fromTarget = this.isTarget(from);
    const line = text.length > 0 ? parseServerLine(text) : undefined;
    let p: Pending | undefined;
    if (line?.tag !== undefined) {
      const candidate = this.pending.get(line.tag);
      if (candidate && (this.opts.matchAnySource || candidate.req.to === from)) p = candidate;
    }
    if (line && this.opts.autoProof && fromTarget) this.autoProof(line, p !== undefined);
    if (p && line) p.lines.push(line);
    try {
      this.opts.onDatagram?.({ text, line, from, fromTarget, answers: p?.req });
    } catch (err) {
      this.report(err);
    }
    if (!p || !line || INTERMEDIATE.has(line.kind)) return;
    clearTimeout(p.timer);
    this.pending.delete(line.tag!);
    p.resolve(p.lines);
  }

  private autoProof(line: ServerLine, answersUs: boolean): void {
    if (line.kind === "BYE" && line.tag === undefined) {
      this.signer = undefined;
      return;
    }
    // Only a reply to our own request may set the key: a forged untagged OK LOGIN must not.
    if (!answersUs || line.kind !== "OK") return;
    if (line.word === "LOGIN") {
      const key = loginKey(line);
      this.useKey(key);
      if (key !== undefined) {
        this.request("PING", { timeoutMs: 3000, internal: true }).catch((err: unknown) => {
          if (!(err instanceof ClientClosedError) && !(err instanceof RequestTimeoutError)) this.report(err);
        });
      }
    } else if (line.word === "BYE" || line.word === "UNREGISTERED") {
      this.signer = undefined;
    }
  }

  private report(err: unknown): void {
    if (this.state === "closed" && err instanceof ClientClosedError) return;
    this.opts.onError?.(toError(err));
  }
}
