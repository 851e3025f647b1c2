/**
 * PesanClient: a UDP client for the Pesan client protocol (docs/protocol.md).
 *
 * It talks to one "current" server out of a list through a Transport (transport.ts: socket,
 * tags, timeouts, session proofs). A heartbeat (`/@live?` -> `yes`) detects a dead server and
 * moves the session to the next one with `RESUME <user> <token>`. Where the session stands is
 * a SessionMachine (session.ts).
 *
 * Protocol v2 (docs/protocol.md "Security"): an `OK LOGIN <user> <token> <key>` answering one
 * of our requests from the current server gives the session key; from then on every datagram
 * to that server is signed (requests, heartbeats, PING, ACK, CAP ACK, sendRaw), and one proven
 * PING goes out at once so the server validates our address (and pushes what waits). Every
 * LOGIN/RESUME reply brings a new key. The key is dropped on a move to another server and when
 * the server says NOT_LOGGED_IN; RESUME is therefore always sent plain: it is only ever sent
 * where the old key is not valid. An `OK LOGIN` without a key (a v1 server): the client stays
 * plain.
 *
 * Only the current server is listened to: MSG, BYE (and ONLINE) pushes from any other address
 * are ignored with an error event, ACKs go only to the current server. A REDIRECT is followed
 * only to a server in the list, and only when it comes from the current server or from the
 * server it names (a survivor taking the session over); nothing is added to the list by it.
 *
 * Everything is time-bounded: every request has a timeout, every timer is unref'd and cleared
 * by close(), and no promise is left floating.
 */
import { EventEmitter } from "node:events";
import { HEARTBEAT, type ServerLine } from "@pesan/shared/protocol";
import { formatServerAddress, parseServerAddress } from "./address.ts";
import { ClientClosedError, PesanError, RequestTimeoutError } from "./errors.ts";
import { SessionMachine, type PesanSession, type SessionPhase } from "./session.ts";
import { rankByRtt, type Probed } from "./nearest.ts";
import { mayResendSend } from "./resend.ts";
import { loginKey, TAG_RE, Transport, type Datagram } from "./transport.ts";

// Still importable from here, where they used to live (chat.ts and older callers).
export { ClientClosedError, PesanError, RequestTimeoutError } from "./errors.ts";
export { formatServerAddress, parseServerAddress, type ServerAddress } from "./address.ts";

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
  /**
   * When LOGIN is answered `ERR FULL <host:port> ...` (and no session is held), try the servers
   * it lists, nearest first by a measured `/@live?` round trip, until one logs us in (default
   * true). The password goes only to the servers that reply lists. Those servers join the
   * server list (failover may use them later).
   */
  followFull?: boolean;
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
  /**
   * When the server answers `ERR NOT_LOGGED_IN` although the client holds a session (its
   * gateway restarted, or a load balancer moved us), the client re-binds with RESUME and, if
   * that succeeds within the timeout, sends the request once more and resolves with that
   * answer. Safe for every command: NOT_LOGGED_IN means nothing was done. Default true; false
   * resolves with the `ERR NOT_LOGGED_IN` (the RESUME still happens).
   */
  retryAfterResume?: boolean;
}

export type { PesanSession, SessionPhase } from "./session.ts";

export interface FailoverEvent {
  from: string;
  to: string;
  reason: "heartbeat" | "redirect" | "full";
}

/** A LOGIN was answered `ERR FULL`: the servers it offered, in the order they will be tried. */
export interface FullEvent {
  server: string;
  /** Those that answered `/@live?`, nearest first, with their round trip. */
  trying: Probed[];
  /** Those that did not answer (not tried). */
  unreachable: string[];
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
  /** The line answers a request the client made by itself (heartbeat, CAP ACK, RESUME, PING). */
  internal: boolean;
}

export type PesanClientEvents = {
  /**
   * Every datagram accepted: all from the current server, replies to our requests from the
   * server they went to, and a REDIRECT that is followed. Pushes from anyone else are not.
   */
  line: [line: ServerLine, meta: LineMeta];
  /** Untagged MSG, ONLINE, BYE, REDIRECT (from the current server; REDIRECT: see above). */
  push: [line: ServerLine, meta: LineMeta];
  /** A pushed MSG whose id was not seen before. */
  message: [msg: MsgLine, meta: LineMeta];
  failover: [event: FailoverEvent];
  full: [event: FullEvent];
  resumed: [event: ResumedEvent];
  /** Socket errors, failed background steps, ignored pushes. Emitted only while someone listens. */
  error: [err: Error];
};

const PUSH_KINDS = new Set<ServerLine["kind"]>(["MSG", "ONLINE", "BYE", "REDIRECT"]);
const SEEN_IDS_MAX = 10_000;
const TRANSIENT_ERRORS = new Set(["UNAVAILABLE", "RATE_LIMITED"]);
/** A SEND request (commands are case-insensitive): the one a client may resend unanswered. */
const SEND_RE = /^\/?send /i;
/** The `/@live?` probe of ERR FULL's alternatives: bounded, resent against loss. */
const PROBE_TIMEOUT_MS = 1000;
const PROBE_RESEND_MS = 250;

type CapResult = "ok" | "needs-session" | "failed" | "timeout" | "stale";
type Lifecycle = "new" | "starting" | "running" | "closed";

const isNotLoggedIn = (lines: ServerLine[]): boolean => {
  const last = lines[lines.length - 1];
  return last?.kind === "ERR" && last.code === "NOT_LOGGED_IN";
};

export class PesanClient extends EventEmitter<PesanClientEvents> {
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  readonly requestTimeoutMs: number;
  readonly capAck: boolean;
  readonly learnServers: boolean;
  readonly followFull: boolean;

  private readonly serverList: string[];
  private readonly transport: Transport;
  private readonly state: SessionMachine;
  private lifecycle: Lifecycle = "new";
  private starting: Promise<void> | undefined;
  private index = 0;
  /** Bumped on every server switch; background steps of an older epoch stop. */
  private epoch = 0;
  private misses = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private capReady: Promise<unknown> | undefined;
  /** The RESUME in flight (resolves true when it bound the session), for requests to wait on. */
  private resuming: Promise<boolean> | undefined;
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
    this.heartbeatMs = nonNegative("heartbeatMs", options.heartbeatMs ?? 5000);
    this.missedHeartbeats = Math.max(1, nonNegative("missedHeartbeats", options.missedHeartbeats ?? 3));
    this.requestTimeoutMs = Math.max(1, nonNegative("requestTimeoutMs", options.requestTimeoutMs ?? 3000));
    this.capAck = options.capAck ?? false;
    this.learnServers = options.learnServers ?? false;
    this.followFull = options.followFull ?? true;
    this.state = new SessionMachine(this.capAck);
    this.transport = new Transport({
      target: this.serverList[0]!,
      ...(options.recvBufferSize !== undefined ? { recvBufferSize: options.recvBufferSize } : {}),
      ...(options.sendBufferSize !== undefined ? { sendBufferSize: options.sendBufferSize } : {}),
      onDatagram: (d) => this.onDatagram(d),
      onError: (err) => this.report(err),
    });
  }

  /** The server requests go to, as `host:port`. */
  get currentServer(): string {
    return this.serverList[this.index]!;
  }

  /** The server list (learnServers adds to it; a REDIRECT never does). */
  get servers(): readonly string[] {
    return this.serverList;
  }

  /** The remembered session (from the last `OK LOGIN`), if any. */
  get session(): PesanSession | undefined {
    return this.state.session;
  }

  /** Where the session stands on the current server. */
  get sessionPhase(): SessionPhase {
    return this.state.phase;
  }

  /** The client signs its datagrams (it holds a session key from the current server). */
  get proving(): boolean {
    return this.transport.key !== undefined;
  }

  /** Local UDP port, once started. */
  get localPort(): number | undefined {
    return this.transport.localPort;
  }

  /** Binds the socket (udp4 or udp6 after the first server) and starts the heartbeat. */
  start(): Promise<void> {
    if (this.lifecycle === "closed") return Promise.reject(new ClientClosedError());
    this.starting ??= this.bindAndRun();
    return this.starting;
  }

  private async bindAndRun(): Promise<void> {
    this.lifecycle = "starting";
    await this.transport.start();
    if (this.lifecycle !== "starting") return; // closed meanwhile
    this.lifecycle = "running";
    const epoch = ++this.epoch;
    if (this.capAck) this.runInBackground(this.connectSequence(epoch));
    this.scheduleHeartbeat(this.heartbeatMs);
  }

  /** Stops the heartbeat, rejects pending requests and closes the socket. Idempotent. */
  close(): Promise<void> {
    this.lifecycle = "closed";
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    return this.transport.close();
  }

  private get closed(): boolean {
    return this.lifecycle === "closed";
  }

  private assertRunning(): void {
    if (this.closed) throw new ClientClosedError();
    if (this.lifecycle !== "running") throw new Error("PesanClient: call start() first");
  }

  /** Sends one datagram, as is (no tag), to the current server; signed in a proof session. */
  sendRaw(text: string): void {
    this.assertRunning();
    this.transport.send(text);
  }

  /**
   * Sends `@<tag> <line>` to the current server and resolves with every line carrying that tag,
   * the final one (OK, ERR, yes, MSG, ...) last; tagged ONLINE/ITEM/SERVER lines are
   * intermediate. Rejects with RequestTimeoutError when the final line does not come in time.
   * See RequestOptions.retryAfterResume for what happens on `ERR NOT_LOGGED_IN`.
   */
  async request(line: string, options: RequestOptions = {}): Promise<ServerLine[]> {
    if (options.tag !== undefined && !TAG_RE.test(options.tag)) {
      throw new Error(`PesanClient: a tag is 1-32 of A-Z a-z 0-9 _ - (got ${JSON.stringify(options.tag)})`);
    }
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    if (!SEND_RE.test(line) || this.heartbeatMs <= 0) return this.requestOnce(line, timeoutMs, options, options.tag);
    // A SEND is exactly-once by its tag (docs/protocol.md "Tags"), so one left unanswered is
    // sent again with the same tag until it is answered: a server that stored it and died
    // before replying, or a lost datagram, never makes a second message. Meanwhile the
    // heartbeats notice a dead server and move the session (RESUME); the resend then goes to
    // the new server, which knows the message if the dead one had passed it on, and otherwise
    // stores it under the same id. Bounded by the time a failover takes, plus a request, and
    // by the server's dedup window (mayResendSend): a later resend would be a second message.
    const tag = options.tag ?? this.transport.nextTag(false);
    const timing = { heartbeatMs: this.heartbeatMs, missedHeartbeats: this.missedHeartbeats, timeoutMs };
    const firstAt = Date.now();
    for (;;) {
      const epoch = this.epoch;
      try {
        return await this.requestOnce(line, timeoutMs, options, tag);
      } catch (err) {
        if (!(err instanceof RequestTimeoutError) || this.closed || !this.state.session || !mayResendSend(Date.now(), firstAt, timing)) throw err;
        // Moved meanwhile: give the new server's RESUME its time before the resend.
        if (epoch !== this.epoch) {
          await this.boundAgain(timeoutMs);
          // That wait may have taken the resend past the window.
          if (this.closed || !mayResendSend(Date.now(), firstAt, timing)) throw err;
        }
      }
    }
  }

  /** Resolves once the session is bound (after a move's RESUME), or after ms, or at close. */
  private boundAgain(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (!this.closed && this.state.phase !== "bound") return;
        clearTimeout(timer);
        this.off("resumed", check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off("resumed", check);
        resolve();
      }, ms);
      timer.unref();
      this.on("resumed", check);
      check();
    });
  }

  private async requestOnce(line: string, timeoutMs: number, options: RequestOptions, tag: string | undefined): Promise<ServerLine[]> {
    const epoch = this.epoch;
    const held = this.state.phase !== "none";
    const lines = await this.ask(line, timeoutMs, false, tag);
    if (!held || !isNotLoggedIn(lines) || epoch !== this.epoch || !this.state.session) return lines;
    // We hold a session but this server does not know us at this address (its gateway
    // restarted, or our datagrams now reach it another way): nothing was done. Re-bind now.
    const resumed = this.rebind(epoch);
    if (options.retryAfterResume === false) return lines;
    if (!(await within(resumed, timeoutMs))) return lines;
    if (epoch !== this.epoch || this.state.phase !== "bound" || this.closed) return lines;
    return this.ask(line, timeoutMs, false, tag);
  }

  /** `REGISTER`; resolves with `OK REGISTERED`, throws PesanError on ERR (e.g. `TAKEN`). */
  async register(user: string, password: string, options?: RequestOptions): Promise<ServerLine> {
    return this.expectOk("REGISTER", `REGISTER ${user} ${password}`, options);
  }

  /**
   * `LOGIN` (after this server's `CAP ACK` when capAck); remembers the session for failover.
   * Throws PesanError on ERR. On `ERR FULL` with followFull (the default) it tries the servers
   * listed there, nearest first, and resolves where one logs it in (`currentServer` says
   * where); when none does, it goes back to the server it started on and throws the `ERR
   * FULL` (whose `alternatives` lists the servers offered), or the `ERR AUTH` one gave.
   */
  async login(user: string, password: string, options?: RequestOptions): Promise<PesanSession> {
    try {
      return await this.loginHere(user, password, options);
    } catch (err) {
      if (!(err instanceof PesanError) || err.code !== "FULL" || !this.followFull) throw err;
      if (this.state.phase !== "none" || this.closed) throw err; // moving would take a held session along
      return this.loginElsewhere(user, password, err, options);
    }
  }

  private async loginHere(user: string, password: string, options?: RequestOptions): Promise<PesanSession> {
    if (this.capReady) await this.capReady.catch(() => undefined);
    const line = await this.expectOk("LOGIN", `LOGIN ${user} ${password}`, options);
    if (line.kind !== "OK" || line.word !== "LOGIN" || line.args.length < 2) throw new PesanError("LOGIN", line);
    return { user: line.args[0]!, token: line.args[1]! };
  }

  /**
   * Tries the servers an ERR FULL lists, nearest first. Only those get the password, never an
   * address the full server did not name: the list is its answer to our tagged request, from
   * the address the request went to (the transport checks that), so nobody else can add to it.
   */
  private async loginElsewhere(user: string, password: string, full: PesanError, options?: RequestOptions): Promise<PesanSession> {
    const home = this.currentServer;
    const offered: string[] = [];
    for (const a of full.alternatives) {
      try {
        const p = parseServerAddress(a);
        const address = formatServerAddress(p.host, p.port);
        if (address !== home && !offered.includes(address)) offered.push(address);
      } catch {
        // addressesIn only returns parseable addresses
      }
    }
    if (offered.length === 0) throw full;
    const { ranked, probed } = await rankByRtt(offered, Math.min(PROBE_TIMEOUT_MS, this.requestTimeoutMs), PROBE_RESEND_MS);
    this.emit("full", { server: home, trying: ranked, unreachable: probed.filter((p) => p.rttMs === undefined).map((p) => p.address) });
    let refused: PesanError | undefined;
    for (const { address } of ranked) {
      if (this.closed) throw new ClientClosedError();
      if (this.state.phase !== "none") break; // logged in meanwhile (a LOGIN sent another way)
      await this.moveTo(address, "full");
      try {
        return await this.loginHere(user, password, options);
      } catch (err) {
        if (err instanceof ClientClosedError) throw err;
        if (err instanceof PesanError && err.code === "AUTH") refused = err;
        // FULL there too, UNAVAILABLE, a timeout: the next one
      }
    }
    if (!this.closed && this.state.phase === "none" && this.currentServer !== home) await this.moveTo(home, "full");
    throw refused ?? full;
  }

  /** Switches to address (added to the list when new) and waits for its CAP ACK. */
  private async moveTo(address: string, reason: FailoverEvent["reason"]): Promise<void> {
    let index = this.serverList.indexOf(address);
    if (index < 0) index = this.serverList.push(address) - 1;
    await this.switchTo(index, reason);
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

  private async ask(line: string, timeoutMs: number, internal: boolean, tag?: string): Promise<ServerLine[]> {
    this.assertRunning();
    return this.transport.request(line, { timeoutMs, internal, ...(tag !== undefined ? { tag } : {}) });
  }

  private onDatagram(d: Datagram): void {
    if (this.closed || !d.line) return; // empty: e.g. what a UDP proxy emits when an upstream dies
    const line = d.line;
    const meta: LineMeta = { from: d.from, own: this.transport.isOwnTag(line.tag), internal: this.transport.isInternalTag(line.tag) };

    if (d.answers) {
      // A reply to one of our requests, from the server it went to (the transport checked).
      // Only the current server's replies change the session: an OK LOGIN from a server we
      // have left must not bind us there.
      if (d.fromTarget) this.observeSession(line);
      this.emit("line", line, meta);
      return;
    }
    if (!d.fromTarget) {
      if (line.tag === undefined && line.kind === "REDIRECT" && this.redirectAllowed(line.address, d.from)) {
        this.emit("line", line, meta);
        this.emit("push", line, meta);
        this.redirect(line.address);
      } else if (line.tag === undefined && PUSH_KINDS.has(line.kind)) {
        if (line.kind !== "REDIRECT") this.report(new Error(`${line.kind} from ${d.from}, which is not the current server ${this.currentServer}, ignored`));
      }
      return; // late replies, strangers' datagrams: not ours to show
    }
    this.emit("line", line, meta);
    if (line.tag !== undefined || !PUSH_KINDS.has(line.kind)) return; // a late reply, a user-tagged one
    this.emit("push", line, meta);
    switch (line.kind) {
      case "MSG": {
        if (this.capAck) this.transport.send(`ACK ${line.id}`);
        if (this.seenIds.has(line.id)) return;
        this.seenIds.add(line.id);
        if (this.seenIds.size > SEEN_IDS_MAX) {
          const oldest = this.seenIds.values().next().value;
          if (oldest !== undefined) this.seenIds.delete(oldest);
        }
        this.emit("message", line, meta);
        return;
      }
      case "BYE":
        this.forgetSession();
        return;
      case "REDIRECT":
        if (this.redirectAllowed(line.address, d.from)) this.redirect(line.address);
        return;
      default:
        return;
    }
  }

  /**
   * A REDIRECT is followed only to a server in the list (so the token goes nowhere else), and
   * only from the current server or from the server it names: a survivor that took the session
   * over sends `REDIRECT <its own address>` from that address. Reports why when it is not.
   */
  private redirectAllowed(address: string, from: string): boolean {
    let to: string;
    try {
      const a = parseServerAddress(address.trim());
      to = formatServerAddress(a.host, a.port);
    } catch (err) {
      this.report(err);
      return false;
    }
    const fromCurrent = this.transport.isTarget(from);
    if (!fromCurrent && !this.serverList.includes(from)) {
      this.report(new Error(`REDIRECT from ${from}, which is not in the server list, ignored`));
      return false;
    }
    if (!this.serverList.includes(to)) {
      this.report(new Error(`REDIRECT from ${from} to ${to}, which is not in the server list, ignored`));
      return false;
    }
    if (!fromCurrent && to !== from) {
      this.report(new Error(`REDIRECT from ${from} to another server (${to}), ignored: a server may only redirect to itself`));
      return false;
    }
    return true;
  }

  /** Learns the session from the current server's replies to our requests (the CLI types LOGIN itself). */
  private observeSession(line: ServerLine): void {
    if (line.kind !== "OK") return;
    if (line.word === "LOGIN" && line.args.length >= 2) {
      this.state.loggedIn({ user: line.args[0]!, token: line.args[1]! });
      const key = loginKey(line);
      this.transport.useKey(key); // none: a v1 server, the session stays plain
      // One proven datagram at once: the server then knows our address receives (and pushes
      // what waits); a NOT_LOGGED_IN to it means RESUME.
      if (key !== undefined) this.runInBackground(this.checkBinding(this.epoch, this.requestTimeoutMs));
      if (this.learnServers) this.runInBackground(this.learnServersStep(this.epoch));
      // The server may want a session before CAP ACK: (re)send it now the session is bound.
      if (this.state.cap === "unsent") this.runInBackground(this.capAckStep(this.epoch));
    } else if (line.word === "BYE" || line.word === "UNREGISTERED") {
      this.forgetSession();
    }
  }

  private forgetSession(): void {
    this.state.forget();
    this.transport.useKey(undefined);
  }

  private redirect(address: string): void {
    const a = parseServerAddress(address.trim());
    void this.switchTo(this.serverList.indexOf(formatServerAddress(a.host, a.port)), "redirect");
  }

  /** Resolves when the new server's connect sequence (CAP ACK, RESUME) has run. */
  private switchTo(index: number, reason: FailoverEvent["reason"]): Promise<void> {
    if (this.closed) return Promise.resolve();
    const from = this.currentServer;
    this.index = index % this.serverList.length;
    const to = this.currentServer;
    const ready = this.transport.retarget(to); // drops the key: it was valid only where it was issued
    const epoch = ++this.epoch;
    this.misses = 0;
    this.state.serverChanged();
    this.capReady = undefined;
    this.resuming = undefined;
    this.emit("failover", { from, to, reason });
    const connected = ready.then(() => this.connectSequence(epoch));
    this.runInBackground(connected);
    return connected.catch(() => undefined); // reported by runInBackground
  }

  /** On a (new) server: CAP ACK when wanted, then RESUME when there is a session. */
  private async connectSequence(epoch: number): Promise<void> {
    if (epoch !== this.epoch || this.closed) return;
    if (this.capAck) {
      const cap = this.capAckStep(epoch);
      this.capReady = cap;
      const r = await cap;
      if (r === "stale" || epoch !== this.epoch || this.closed) return;
      if (r === "timeout") return; // heartbeats decide whether this server is dead
    }
    if (this.state.phase === "unbound") await this.resumeStep(epoch);
  }

  private async capAckStep(epoch: number): Promise<CapResult> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (epoch !== this.epoch || this.closed) return "stale";
      if (!this.state.capStarted()) return "stale"; // already on its way, done, or not wanted
      let lines: ServerLine[];
      try {
        lines = await this.ask("CAP ACK", this.requestTimeoutMs, true);
      } catch (err) {
        if (epoch !== this.epoch || err instanceof ClientClosedError) return "stale";
        this.state.capEnded("unsent"); // the next OK LOGIN sends it again
        if (err instanceof RequestTimeoutError) return "timeout";
        throw err;
      }
      if (epoch !== this.epoch) return "stale";
      const last = lines[lines.length - 1]!;
      if (last.kind === "OK") {
        this.state.capEnded("ok");
        return "ok";
      }
      if (last.kind === "ERR" && last.code === "NOT_LOGGED_IN") {
        this.state.capEnded("unsent");
        // Sent again after OK LOGIN (observeSession); if that already came, retry right away.
        if (this.state.phase === "bound") continue;
        return "needs-session";
      }
      this.state.capEnded("failed");
      this.report(new PesanError("CAP ACK", last));
      return "failed";
    }
    return "needs-session";
  }

  private async learnServersStep(epoch: number): Promise<void> {
    let lines: ServerLine[];
    try {
      lines = await this.ask("SERVERS", this.requestTimeoutMs, true);
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

  /** The session was bound here but the server no longer knows us: RESUME (or join the one in flight). */
  private rebind(epoch: number): Promise<boolean> {
    if (epoch !== this.epoch) return Promise.resolve(false);
    this.state.lost();
    return this.resumeStep(epoch);
  }

  /** RESUME on the current server; resolves true when it bound the session. */
  private resumeStep(epoch: number): Promise<boolean> {
    if (this.state.phase === "resuming" && this.resuming) return this.resuming;
    if (this.closed || epoch !== this.epoch || !this.state.beginResume()) return Promise.resolve(this.state.phase === "bound");
    const s = this.state.session!;
    // Plain: RESUME goes only where the key is not valid (a new server, or one that said it
    // does not know us), and its reply brings the new key.
    this.transport.useKey(undefined);
    const p = this.runResume(epoch, s);
    this.resuming = p;
    void p.finally(() => {
      if (this.resuming === p) this.resuming = undefined;
    });
    return p;
  }

  private async runResume(epoch: number, s: PesanSession): Promise<boolean> {
    try {
      const lines = await this.ask(`RESUME ${s.user} ${s.token}`, this.requestTimeoutMs, true);
      if (epoch !== this.epoch || this.closed) return false;
      const last = lines[lines.length - 1]!;
      if (last.kind === "OK" && last.word === "LOGIN") {
        // observeSession bound the session (and took the new key) as the reply came in.
        this.emit("resumed", { server: this.currentServer, user: last.args[0] ?? s.user });
        return true;
      }
      if (last.kind === "ERR" && last.code === "AUTH") {
        if (this.state.resumeRefused()) this.transport.useKey(undefined);
      } else {
        // A transient refusal is retried after the next good heartbeat; anything else is not
        // (the session is kept: the next failover tries RESUME again).
        this.state.resumeFailed(last.kind === "ERR" && TRANSIENT_ERRORS.has(last.code));
      }
      this.report(new PesanError("RESUME", last));
      return false;
    } catch (err) {
      if (err instanceof ClientClosedError) return false;
      if (epoch === this.epoch) this.state.resumeFailed(true);
      this.report(err);
      return false;
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
      const lines = await this.ask(HEARTBEAT, this.heartbeatMs, true);
      alive = lines[lines.length - 1]?.kind === "YES";
    } catch (err) {
      if (err instanceof ClientClosedError) return;
      if (!(err instanceof RequestTimeoutError)) this.report(err);
    }
    if (this.closed) return;
    if (epoch === this.epoch) {
      if (alive) {
        this.misses = 0;
        if (this.state.phase === "bound") this.runInBackground(this.checkBinding(epoch, this.heartbeatMs));
        else if (this.state.phase === "unbound" && this.state.cap !== "sending") this.runInBackground(this.resumeStep(epoch));
      } else {
        this.misses += 1;
        if (this.misses >= this.missedHeartbeats) void this.switchTo(this.index + 1, "heartbeat");
      }
    }
    this.scheduleHeartbeat(Math.max(0, this.heartbeatMs - (Date.now() - started)));
  }

  /**
   * `/@live?` answers without a session, so it cannot tell that a load balancer has moved us
   * to another gateway, where our session is unknown. PING needs one: NOT_LOGGED_IN means
   * re-bind with RESUME now, before pushes go missing. Right after a key came it is also the
   * proven datagram that validates our address.
   */
  private async checkBinding(epoch: number, timeoutMs: number): Promise<void> {
    try {
      const lines = await this.ask("PING", timeoutMs, true);
      if (isNotLoggedIn(lines) && epoch === this.epoch && this.state.session) await this.rebind(epoch);
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

/** Whether p resolves true within ms (false on timeout); leaves no timer behind. */
async function within(p: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function nonNegative(name: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new Error(`PesanClient: ${name} must be a number >= 0`);
  return Math.floor(v);
}
