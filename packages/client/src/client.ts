/**
 * PesanClient: a UDP client for the Pesan client protocol (docs/protocol.md).
 *
 * One dgram socket talks to one "current" server out of a list. Requests are tagged so replies
 * are matched even when pushes interleave; a heartbeat (`/@live?` -> `yes`) detects a dead
 * server and moves the session to the next one with `RESUME <user> <token>`.
 *
 * Everything is time-bounded: every request has a timeout, every timer is unref'd and cleared
 * by close(), and no promise is left floating.
 */
import { EventEmitter } from "node:events";
import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import { parseServerLine, unframe, type ServerLine, HEARTBEAT } from "@pesan/shared/protocol";

export type MsgLine = Extract<ServerLine, { kind: "MSG" }>;
export type ErrLine = Extract<ServerLine, { kind: "ERR" }>;

export interface PesanClientOptions {
  /** `host:port` or `[ipv6]:port`, nearest first. The socket family follows the first one. */
  servers: string[];
  /** Heartbeat period in ms (default 5000); 0 disables heartbeats and so failover. */
  heartbeatMs?: number;
  /** Unanswered heartbeats in a row before switching to the next server (default 3). */
  missedHeartbeats?: number;
  /** Default timeout of request() (default 3000 ms). */
  requestTimeoutMs?: number;
  /** Send `CAP ACK` on every server before LOGIN/RESUME and `ACK <id>` every pushed MSG. */
  capAck?: boolean;
  /**
   * After each LOGIN or RESUME, ask `SERVERS` and add the servers not in the list yet (in the
   * order given, nearest first) to the end of it: failover and REDIRECT then know every
   * cluster, not only the configured ones (default false: the list stays as given).
   */
  learnServers?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
}

export interface RequestOptions {
  /** Overrides the client's requestTimeoutMs for this request. */
  timeoutMs?: number;
  /**
   * The tag to send, instead of a fresh one: resending a SEND with the same tag is how a client
   * retries without the risk of a duplicate (the server answers a repeat with the first reply).
   */
  tag?: string;
}

export interface PesanSession {
  user: string;
  token: string;
}

export interface ServerAddress {
  host: string;
  port: number;
}

export interface FailoverEvent {
  from: string;
  to: string;
  reason: "heartbeat" | "redirect";
}

export interface ResumedEvent {
  server: string;
  user: string;
}

/** Extra facts about a received datagram. */
export interface LineMeta {
  /** `host:port` the datagram came from. */
  from: string;
  /** The line carries a tag this client generated. */
  own: boolean;
  /** The line answers a request the client made by itself (heartbeat, CAP ACK, RESUME). */
  internal: boolean;
}

export type PesanClientEvents = {
  /** Every datagram received. */
  line: [line: ServerLine, meta: LineMeta];
  /** Untagged MSG, ONLINE, BYE, REDIRECT. */
  push: [line: ServerLine, meta: LineMeta];
  /** A pushed MSG whose id was not seen before. */
  message: [msg: MsgLine, meta: LineMeta];
  failover: [event: FailoverEvent];
  resumed: [event: ResumedEvent];
  /** Socket errors and failed background steps. Emitted only while someone listens. */
  error: [err: Error];
};

/** An `ERR` (or otherwise unexpected) final reply to one of the convenience methods. */
export class PesanError extends Error {
  /** The ERR code (`AUTH`, `FULL`, ...) or `UNEXPECTED` for a final line that is not OK/ERR. */
  readonly code: string;
  readonly line: ServerLine;
  /** For `ERR FULL`: the other servers it lists (`host:port`, nearest first); else empty. */
  readonly alternatives: string[];

  constructor(command: string, line: ServerLine) {
    const code = line.kind === "ERR" ? line.code : "UNEXPECTED";
    super(`${command}: ${line.kind === "ERR" ? `ERR ${line.code} ${line.text}`.trimEnd() : `unexpected reply ${JSON.stringify(line.raw)}`}`);
    this.name = "PesanError";
    this.code = code;
    this.line = line;
    this.alternatives = line.kind === "ERR" ? addressesIn(line.text) : [];
  }
}

export class RequestTimeoutError extends Error {
  readonly code = "TIMEOUT";
  readonly request: string;
  readonly server: string;
  readonly timeoutMs: number;

  constructor(request: string, server: string, timeoutMs: number) {
    super(`no reply from ${server} to ${JSON.stringify(shorten(request))} within ${timeoutMs} ms`);
    this.name = "RequestTimeoutError";
    this.request = request;
    this.server = server;
    this.timeoutMs = timeoutMs;
  }
}

export class ClientClosedError extends Error {
  readonly code = "CLOSED";

  constructor() {
    super("client closed");
    this.name = "ClientClosedError";
  }
}

const ADDRESS_RE_V6 = /^\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]:(\d{1,5})$/;
const ADDRESS_RE_V4 = /^([A-Za-z0-9.-]+):(\d{1,5})$/;

/** Parses `host:port` or `[ipv6]:port`; throws on anything else. */
export function parseServerAddress(s: string): ServerAddress {
  const m = ADDRESS_RE_V6.exec(s) ?? ADDRESS_RE_V4.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new Error(`bad server address ${JSON.stringify(s)}: expected host:port or [ipv6]:port`);
  }
  return { host: m[1]!, port };
}

export function formatServerAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Every `host:port` token of a text (an `ERR FULL` reply lists the alternatives). */
function addressesIn(text: string): string[] {
  const out: string[] = [];
  for (const word of text.split(/\s+/)) {
    const w = word.replace(/[,;]+$/, "");
    try {
      parseServerAddress(w);
      out.push(w);
    } catch {
      // a word of the human text
    }
  }
  return out;
}

function shorten(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}...` : s;
}

/** Tagged lines of these kinds are followed by more lines for the same request. */
const INTERMEDIATE = new Set<ServerLine["kind"]>(["ONLINE", "ITEM", "SERVER"]);
const PUSH_KINDS = new Set<ServerLine["kind"]>(["MSG", "ONLINE", "BYE", "REDIRECT"]);
const SEEN_IDS_MAX = 10_000;
const TRANSIENT_ERRORS = new Set(["UNAVAILABLE", "RATE_LIMITED"]);

interface Pending {
  lines: ServerLine[];
  resolve: (lines: ServerLine[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

type CapResult = "ok" | "needs-session" | "failed" | "timeout" | "stale";

export class PesanClient extends EventEmitter<PesanClientEvents> {
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  readonly requestTimeoutMs: number;
  readonly capAck: boolean;
  readonly learnServers: boolean;

  private readonly serverList: string[];
  private readonly recvBufferSize: number | undefined;
  private readonly sendBufferSize: number | undefined;
  private readonly tagPrefix = randomBytes(4).toString("hex");
  private tagCounter = 0;
  private socket: dgram.Socket | undefined;
  private closed = false;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly pending = new Map<string, Pending>();
  private index = 0;
  private target: ServerAddress;
  /** Bumped on every server switch; background steps of an older epoch stop. */
  private epoch = 0;
  private misses = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private sessionValue: PesanSession | undefined;
  /** Epoch in which the current session was last bound (OK LOGIN seen). */
  private boundEpoch = -1;
  private needsResume = false;
  private resumingEpoch = -1;
  private capOk = false;
  private capFailed = false;
  private capInFlight = false;
  private capReady: Promise<unknown> | undefined;
  private readonly seenIds = new Set<string>();

  constructor(options: PesanClientOptions) {
    super();
    if (!Array.isArray(options.servers) || options.servers.length === 0) {
      throw new Error("PesanClient: at least one server is required");
    }
    this.serverList = options.servers.map((s) => {
      const a = parseServerAddress(s);
      return formatServerAddress(a.host, a.port);
    });
    this.target = parseServerAddress(this.serverList[0]!);
    this.heartbeatMs = nonNegative("heartbeatMs", options.heartbeatMs ?? 5000);
    this.missedHeartbeats = Math.max(1, nonNegative("missedHeartbeats", options.missedHeartbeats ?? 3));
    this.requestTimeoutMs = Math.max(1, nonNegative("requestTimeoutMs", options.requestTimeoutMs ?? 3000));
    this.capAck = options.capAck ?? false;
    this.learnServers = options.learnServers ?? false;
    this.recvBufferSize = options.recvBufferSize;
    this.sendBufferSize = options.sendBufferSize;
  }

  /** The server requests go to, as `host:port`. */
  get currentServer(): string {
    return this.serverList[this.index]!;
  }

  /** The server list (a REDIRECT to an unknown address adds it, and so does learnServers). */
  get servers(): readonly string[] {
    return this.serverList;
  }

  /** The remembered session (from the last `OK LOGIN`), if any. */
  get session(): PesanSession | undefined {
    return this.sessionValue;
  }

  /** Local UDP port, once started. */
  get localPort(): number | undefined {
    try {
      return this.socket?.address().port;
    } catch {
      return undefined;
    }
  }

  /** Binds the socket (udp4 or udp6 after the first server) and starts the heartbeat. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    this.starting ??= this.bindAndRun();
    return this.starting;
  }

  private async bindAndRun(): Promise<void> {
    const type = this.target.host.includes(":") ? "udp6" : "udp4";
    const socket = dgram.createSocket({
      type,
      ...(this.recvBufferSize !== undefined ? { recvBufferSize: this.recvBufferSize } : {}),
      ...(this.sendBufferSize !== undefined ? { sendBufferSize: this.sendBufferSize } : {}),
    });
    this.socket = socket;
    socket.on("message", (buf, rinfo) => this.onDatagram(buf, rinfo));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      socket.once("error", onError);
      socket.once("close", () => resolve()); // close() during bind
      socket.bind(0, () => {
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
    if (this.closed) return;
    socket.on("error", (err) => this.report(err));
    const epoch = ++this.epoch;
    if (this.capAck) this.runInBackground(this.connectSequence(epoch));
    this.scheduleHeartbeat(this.heartbeatMs);
  }

  /** Stops the heartbeat, rejects pending requests and closes the socket. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
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

  /** Sends one datagram, as is (no tag), to the current server. */
  sendRaw(text: string): void {
    if (this.closed) throw new ClientClosedError();
    if (!this.socket) throw new Error("PesanClient: call start() first");
    this.transmit(text, this.target, (err) => {
      if (err) this.report(err);
    });
  }

  /**
   * Sends `@<tag> <line>` to the current server and resolves with every line carrying that tag,
   * the final one (OK, ERR, yes, MSG, ...) last; tagged ONLINE/ITEM/SERVER lines are
   * intermediate. Rejects with RequestTimeoutError when the final line does not come in time.
   */
  request(line: string, options: RequestOptions = {}): Promise<ServerLine[]> {
    if (options.tag !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(options.tag)) {
      return Promise.reject(new Error(`PesanClient: a tag is 1-32 of A-Z a-z 0-9 _ - (got ${JSON.stringify(options.tag)})`));
    }
    return this.requestTagged(line, options.timeoutMs ?? this.requestTimeoutMs, false, options.tag);
  }

  /** `REGISTER`; resolves with `OK REGISTERED`, throws PesanError on ERR (e.g. `TAKEN`). */
  async register(user: string, password: string, options?: RequestOptions): Promise<ServerLine> {
    return this.expectOk("REGISTER", `REGISTER ${user} ${password}`, options);
  }

  /**
   * `LOGIN` (after this server's `CAP ACK` when capAck); remembers the session for failover.
   * Throws PesanError on ERR; for `ERR FULL` its `alternatives` lists the other servers.
   */
  async login(user: string, password: string, options?: RequestOptions): Promise<PesanSession> {
    if (this.capReady) await this.capReady.catch(() => undefined);
    const line = await this.expectOk("LOGIN", `LOGIN ${user} ${password}`, options);
    if (line.kind !== "OK" || line.word !== "LOGIN" || line.args.length < 2) throw new PesanError("LOGIN", line);
    return { user: line.args[0]!, token: line.args[1]! };
  }

  /** `SEND`; resolves with the `OK SENT <id> DELIVERED|STORED` line, throws PesanError on ERR. */
  async send(to: string, text: string, options?: RequestOptions): Promise<ServerLine> {
    return this.expectOk("SEND", `SEND ${to} ${text}`, options);
  }

  /** `WHO`; resolves with the users of every `ONLINE` line. */
  async who(options?: RequestOptions): Promise<string[]> {
    const lines = await this.request("WHO", options);
    const last = lines[lines.length - 1]!;
    if (last.kind !== "OK") throw new PesanError("WHO", last);
    return lines.flatMap((l) => (l.kind === "ONLINE" ? l.users : []));
  }

  /** `LOGOUT`; forgets the session even when the server does not answer. */
  async logout(options?: RequestOptions): Promise<void> {
    try {
      await this.expectOk("LOGOUT", "LOGOUT", options);
    } finally {
      this.forgetSession();
    }
  }

  // -------------------------------------------------------------------------------------------

  private async expectOk(command: string, line: string, options?: RequestOptions): Promise<ServerLine> {
    const lines = await this.request(line, options);
    const last = lines[lines.length - 1]!;
    if (last.kind !== "OK") throw new PesanError(command, last);
    return last;
  }

  private nextTag(internal: boolean): string {
    this.tagCounter += 1;
    return `${this.tagPrefix}${internal ? "i" : "u"}${this.tagCounter}`;
  }

  private isOwnTag(tag: string | undefined): boolean {
    return tag !== undefined && tag.length > this.tagPrefix.length + 1 && tag.startsWith(this.tagPrefix) && /[iu]/.test(tag[this.tagPrefix.length]!);
  }

  private isInternalTag(tag: string | undefined): boolean {
    return this.isOwnTag(tag) && tag![this.tagPrefix.length] === "i";
  }

  private requestTagged(line: string, timeoutMs: number, internal: boolean, chosenTag?: string): Promise<ServerLine[]> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    if (!this.socket) return Promise.reject(new Error("PesanClient: call start() first"));
    const tag = chosenTag ?? this.nextTag(internal);
    if (this.pending.has(tag)) return Promise.reject(new Error(`PesanClient: a request tagged ${tag} is already waiting`));
    const server = this.currentServer;
    return new Promise<ServerLine[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tag);
        reject(new RequestTimeoutError(line, server, timeoutMs));
      }, timeoutMs);
      timer.unref();
      this.pending.set(tag, { lines: [], resolve, reject, timer });
      this.transmit(`@${tag} ${line}`, this.target, (err) => {
        if (!err) return;
        const p = this.pending.get(tag);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(tag);
        reject(err);
      });
    });
  }

  private transmit(text: string, to: ServerAddress, cb: (err: Error | null) => void): void {
    const socket = this.socket;
    if (!socket || this.closed) return cb(new ClientClosedError());
    try {
      socket.send(text, to.port, to.host, (err) => cb(err ?? null));
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private onDatagram(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    const raw = unframe(buf.toString("utf8"));
    if (raw.length === 0) return; // e.g. what a UDP proxy emits when an upstream dies
    const line = parseServerLine(raw);
    const from = formatServerAddress(rinfo.address, rinfo.port);
    const own = this.isOwnTag(line.tag);
    const meta: LineMeta = { from, own, internal: this.isInternalTag(line.tag) };

    this.observeSession(line); // any tag here answers something this socket sent
    this.emit("line", line, meta);

    if (line.tag !== undefined) {
      const p = this.pending.get(line.tag);
      if (!p) return; // late reply, or someone else's tag
      p.lines.push(line);
      if (INTERMEDIATE.has(line.kind)) return;
      clearTimeout(p.timer);
      this.pending.delete(line.tag);
      // We hold a session but this server does not know us at this address: our datagrams now
      // reach it another way (a load balancer moved us to another gateway). Re-bind at once.
      if (line.kind === "ERR" && line.code === "NOT_LOGGED_IN" && this.sessionValue && !this.isInternalTag(line.tag)) {
        this.needsResume = true;
        this.runInBackground(this.resumeStep(this.epoch));
      }
      p.resolve(p.lines);
      return;
    }

    if (!PUSH_KINDS.has(line.kind)) return;
    this.emit("push", line, meta);
    switch (line.kind) {
      case "MSG": {
        if (this.capAck) {
          this.transmit(`ACK ${line.id}`, { host: rinfo.address, port: rinfo.port }, (err) => {
            if (err) this.report(err);
          });
        }
        if (this.seenIds.has(line.id)) return;
        this.seenIds.add(line.id);
        if (this.seenIds.size > SEEN_IDS_MAX) {
          const oldest = this.seenIds.values().next().value;
          if (oldest !== undefined) this.seenIds.delete(oldest);
        }
        this.emit("message", line, meta);
        return;
      }
      case "BYE": {
        // A BYE from a listed server that is not the current one (e.g. the one we left, telling
        // us the session moved) must not drop the session we now hold elsewhere.
        const otherKnown = from !== this.currentServer && this.serverList.includes(from);
        if (!otherKnown) this.forgetSession();
        return;
      }
      case "REDIRECT":
        // Only a server we know may move us (a survivor of our cluster's death sends it from
        // its own address, which SERVERS listed): anyone else could steer us anywhere.
        if (!this.serverList.includes(from)) {
          this.report(new Error(`REDIRECT from ${from}, which is not in the server list, ignored`));
          return;
        }
        this.redirect(line.address);
        return;
      default:
        return;
    }
  }

  /** Learns the session from replies, whoever made the request (the CLI types LOGIN itself). */
  private observeSession(line: ServerLine): void {
    if (line.kind !== "OK") return;
    if (line.word === "LOGIN" && line.args.length >= 2) {
      this.sessionValue = { user: line.args[0]!, token: line.args[1]! };
      this.boundEpoch = this.epoch;
      this.needsResume = false;
      if (this.learnServers) this.runInBackground(this.learnServersStep(this.epoch));
      // The server may want a session before CAP ACK: (re)send it now the session is bound.
      if (this.capAck && !this.capOk && !this.capFailed && !this.capInFlight) {
        this.runInBackground(this.capAckStep(this.epoch));
      }
    } else if (line.word === "BYE" || line.word === "UNREGISTERED") {
      this.forgetSession();
    }
  }

  private forgetSession(): void {
    this.sessionValue = undefined;
    this.needsResume = false;
  }

  private redirect(address: string): void {
    let a: ServerAddress;
    try {
      a = parseServerAddress(address.trim());
    } catch (err) {
      this.report(err);
      return;
    }
    const to = formatServerAddress(a.host, a.port);
    let i = this.serverList.indexOf(to);
    if (i < 0) {
      i = this.index + 1;
      this.serverList.splice(i, 0, to);
    }
    this.switchTo(i, "redirect");
  }

  private switchTo(index: number, reason: FailoverEvent["reason"]): void {
    if (this.closed) return;
    const from = this.currentServer;
    this.index = index % this.serverList.length;
    const to = this.currentServer;
    this.target = parseServerAddress(to);
    const epoch = ++this.epoch;
    this.misses = 0;
    this.capOk = false;
    this.capFailed = false;
    this.capInFlight = false;
    this.capReady = undefined;
    this.needsResume = this.sessionValue !== undefined;
    this.emit("failover", { from, to, reason });
    this.runInBackground(this.connectSequence(epoch));
  }

  /** On a (new) server: CAP ACK when wanted, then RESUME when there is a session. */
  private async connectSequence(epoch: number): Promise<void> {
    if (this.capAck) {
      const cap = this.capAckStep(epoch);
      this.capReady = cap;
      const r = await cap;
      if (r === "stale" || epoch !== this.epoch || this.closed) return;
      if (r === "timeout") return; // heartbeats decide whether this server is dead
    }
    if (this.sessionValue && this.needsResume) await this.resumeStep(epoch);
  }

  private async capAckStep(epoch: number): Promise<CapResult> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (epoch !== this.epoch || this.closed) return "stale";
      this.capInFlight = true;
      let lines: ServerLine[];
      try {
        lines = await this.requestTagged("CAP ACK", this.requestTimeoutMs, true);
      } catch (err) {
        if (epoch === this.epoch) this.capInFlight = false;
        if (err instanceof RequestTimeoutError) return epoch === this.epoch ? "timeout" : "stale";
        if (err instanceof ClientClosedError) return "stale";
        throw err;
      }
      if (epoch !== this.epoch) return "stale";
      this.capInFlight = false;
      const last = lines[lines.length - 1]!;
      if (last.kind === "OK") {
        this.capOk = true;
        return "ok";
      }
      if (last.kind === "ERR" && last.code === "NOT_LOGGED_IN") {
        // Sent again after OK LOGIN (observeSession); if that already came, retry right away.
        if (this.sessionValue && this.boundEpoch === epoch) continue;
        return "needs-session";
      }
      this.capFailed = true;
      this.report(new PesanError("CAP ACK", last));
      return "failed";
    }
    return "needs-session";
  }

  private async learnServersStep(epoch: number): Promise<void> {
    let lines: ServerLine[];
    try {
      lines = await this.requestTagged("SERVERS", this.requestTimeoutMs, true);
    } catch (err) {
      if (!(err instanceof ClientClosedError) && !(err instanceof RequestTimeoutError)) this.report(err);
      return;
    }
    if (epoch !== this.epoch || this.closed) return;
    for (const l of lines) {
      if (l.kind !== "SERVER") continue;
      try {
        const a = parseServerAddress(l.address);
        const address = formatServerAddress(a.host, a.port);
        if (!this.serverList.includes(address)) this.serverList.push(address);
      } catch {
        // a server whose address we could not use
      }
    }
  }

  private async resumeStep(epoch: number): Promise<void> {
    const s = this.sessionValue;
    if (!s || this.resumingEpoch === epoch || this.closed) return;
    this.resumingEpoch = epoch;
    try {
      const lines = await this.requestTagged(`RESUME ${s.user} ${s.token}`, this.requestTimeoutMs, true);
      if (epoch !== this.epoch || this.closed) return;
      const last = lines[lines.length - 1]!;
      if (last.kind === "OK" && last.word === "LOGIN") {
        this.needsResume = false;
        this.emit("resumed", { server: this.currentServer, user: last.args[0] ?? s.user });
      } else if (last.kind === "ERR" && last.code === "AUTH") {
        if (this.sessionValue === s) this.forgetSession();
        this.report(new PesanError("RESUME", last));
      } else {
        // A transient refusal is retried after the next good heartbeat; anything else is not
        // (the session is kept: the next failover tries RESUME again).
        this.needsResume = last.kind === "ERR" && TRANSIENT_ERRORS.has(last.code);
        this.report(new PesanError("RESUME", last));
      }
    } catch (err) {
      if (err instanceof ClientClosedError) return;
      if (epoch === this.epoch) this.needsResume = true;
      this.report(err);
    } finally {
      if (this.resumingEpoch === epoch) this.resumingEpoch = -1;
    }
  }

  private scheduleHeartbeat(delay: number): void {
    if (this.closed || this.heartbeatMs <= 0) return;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = undefined;
      this.runInBackground(this.heartbeat());
    }, delay);
    this.heartbeatTimer.unref();
  }

  private async heartbeat(): Promise<void> {
    const epoch = this.epoch;
    const started = Date.now();
    let alive = false;
    try {
      const lines = await this.requestTagged(HEARTBEAT, this.heartbeatMs, true);
      alive = lines[lines.length - 1]?.kind === "YES";
    } catch (err) {
      if (err instanceof ClientClosedError) return;
      if (!(err instanceof RequestTimeoutError)) this.report(err);
    }
    if (this.closed) return;
    if (alive && epoch === this.epoch && this.sessionValue && !this.needsResume) this.runInBackground(this.checkBinding(epoch));
    if (epoch === this.epoch) {
      if (alive) {
        this.misses = 0;
        if (this.needsResume && this.sessionValue && this.resumingEpoch !== epoch && !this.capInFlight) {
          this.runInBackground(this.resumeStep(epoch));
        }
      } else {
        this.misses += 1;
        if (this.misses >= this.missedHeartbeats) this.switchTo(this.index + 1, "heartbeat");
      }
    }
    this.scheduleHeartbeat(Math.max(0, this.heartbeatMs - (Date.now() - started)));
  }

  /**
   * `/@live?` answers without a session, so it cannot tell that a load balancer has moved us
   * to another gateway, where our session is unknown. PING needs one: NOT_LOGGED_IN means
   * re-bind with RESUME now, before pushes go missing.
   */
  private async checkBinding(epoch: number): Promise<void> {
    try {
      const lines = await this.requestTagged("PING", this.heartbeatMs, true);
      const last = lines[lines.length - 1];
      if (last?.kind === "ERR" && last.code === "NOT_LOGGED_IN" && epoch === this.epoch && this.sessionValue) {
        this.needsResume = true;
        await this.resumeStep(epoch);
      }
    } catch (err) {
      if (!(err instanceof RequestTimeoutError) && !(err instanceof ClientClosedError)) this.report(err);
    }
  }

  private runInBackground(p: Promise<unknown>): void {
    void p.catch((err: unknown) => this.report(err));
  }

  private report(err: unknown): void {
    if (this.closed && err instanceof ClientClosedError) return;
    const e = err instanceof Error ? err : new Error(String(err));
    if (this.listenerCount("error") > 0) this.emit("error", e);
  }
}

function nonNegative(name: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new Error(`PesanClient: ${name} must be a number >= 0`);
  return Math.floor(v);
}
