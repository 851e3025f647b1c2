/**
 * What the gateway knows about each client address, for the protocol's security rules
 * (docs/protocol.md "Security"): the session proof key a router bound to it and its replay
 * window, whether the address is validated (it sent a valid proof, so it receives what we
 * send), and the bytes received from and sent to it, for the amplification bound: until an
 * address is validated it is sent at most AMPLIFICATION_FACTOR times what it sent, plus, for
 * plain sessions and REDIRECT, what a per-destination-IP byte budget allows. Pure: no sockets,
 * the clock is passed in.
 */
import { ReplayWindow, ipOf, splitProof, verifyProof } from "@pesan/shared/protocol";

/** RFC 9000 section 8: at most 3x the bytes received until the address is validated. */
export const AMPLIFICATION_FACTOR = 3;

export interface Endpoint {
  recv: number;
  sent: number;
  lastSeen: number;
  key: string | undefined;
  keyId: string | undefined;
  window: ReplayWindow | undefined;
  validated: boolean;
  /** A session is bound here that may go on without proofs (PLAIN_SESSIONS allows it). */
  plain: boolean;
}

export type ProofVerdict =
  | { kind: "plain"; text: string }
  | { kind: "proven"; text: string; keyId: string }
  /** Malformed proof, no key for this address, or a wrong MAC: answer NOT_LOGGED_IN (bounded). */
  | { kind: "invalid"; text: string }
  /** A valid proof whose sequence number was used already or is too old: drop silently. */
  | { kind: "replayed" };

export type SendVerdict = "sent-validated" | "sent-credit" | "sent-budget" | "withheld";

/** A token bucket of bytes per key (destination IP), refilled continuously. */
export class ByteBudget {
  private readonly buckets = new Map<string, { tokens: number; last: number }>();
  private readonly perSec: number;
  private readonly burst: number;

  constructor(perSec: number, burst: number = perSec) {
    this.perSec = perSec;
    this.burst = burst;
  }

  take(key: string, bytes: number, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, last: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.last) * this.perSec) / 1000);
      b.last = now;
    }
    if (b.tokens < bytes) return false;
    b.tokens -= bytes;
    return true;
  }

  sweep(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + ((now - b.last) * this.perSec) / 1000 >= this.burst) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }
}

export interface EndpointsOptions {
  /** Most addresses remembered; the least recently heard are forgotten first. */
  maxEndpoints: number;
  /** An address without a session is forgotten after this long unheard. */
  idleMs: number;
  /** An address with a session is forgotten after this long unheard (sessions expire before). */
  sessionIdleMs: number;
  /** Bytes per second that plain sessions and REDIRECTs of one IP may get beyond the 3x credit. */
  plainBytesPerIp: number;
}

const fresh = (now: number): Endpoint => ({ recv: 0, sent: 0, lastSeen: now, key: undefined, keyId: undefined, window: undefined, validated: false, plain: false });

export class Endpoints {
  // Addresses with a bound session and those without are kept apart, so a flood from many
  // new addresses evicts only other session-less ones, never a session's key. A Map keeps
  // insertion order; hearing from an address re-inserts it, so the first is the oldest.
  private readonly bound = new Map<string, Endpoint>();
  private readonly loose = new Map<string, Endpoint>();
  private readonly opts: EndpointsOptions;
  private readonly budget: ByteBudget;

  constructor(opts: EndpointsOptions) {
    this.opts = opts;
    this.budget = new ByteBudget(opts.plainBytesPerIp);
  }

  get(addr: string): Endpoint | undefined {
    return this.bound.get(addr) ?? this.loose.get(addr);
  }

  /** Whether a session is bound at addr (so its datagrams are not "from an address without one"). */
  hasSession(addr: string): boolean {
    return this.bound.has(addr);
  }

  /** A datagram of `bytes` came from addr: it earns the address send credit. */
  received(addr: string, bytes: number, now: number): Endpoint {
    const map = this.bound.has(addr) ? this.bound : this.loose;
    let e = map.get(addr);
    if (e) map.delete(addr);
    else {
      e = fresh(now);
      this.makeRoom(map);
    }
    e.recv += bytes;
    e.lastSeen = now;
    map.set(addr, e);
    return e;
  }

  /** A router bound a session here: a new key and window; validated again only by a proof. */
  bind(addr: string, keyId: string, key: string, plain: boolean, now: number): void {
    let e = this.bound.get(addr) ?? this.loose.get(addr);
    this.loose.delete(addr);
    this.bound.delete(addr);
    e ??= fresh(now);
    e.key = key;
    e.keyId = keyId;
    e.window = new ReplayWindow();
    e.validated = false;
    e.plain = plain;
    e.lastSeen = now;
    this.makeRoom(this.bound);
    this.bound.set(addr, e);
  }

  unbind(addr: string): void {
    const e = this.bound.get(addr);
    if (!e) return;
    this.bound.delete(addr);
    e.key = undefined;
    e.keyId = undefined;
    e.window = undefined;
    e.validated = false;
    e.plain = false;
    this.makeRoom(this.loose);
    this.loose.set(addr, e);
  }

  /**
   * Checks a datagram's session proof, if it has one. A valid proof validates the address; the
   * window moves only after the MAC verified, so forgeries cannot disturb it.
   */
  checkProof(e: Endpoint, text: string): ProofVerdict {
    const p = splitProof(text);
    if (p.kind === "plain") return { kind: "plain", text };
    if (p.kind === "malformed") return { kind: "invalid", text: text.slice(text.indexOf(" ") + 1) };
    if (!e.key || !e.keyId || !e.window || !verifyProof(e.key, p.seq, p.mac, p.payload)) return { kind: "invalid", text: p.payload };
    if (!e.window.accept(p.seq)) return { kind: "replayed" };
    e.validated = true;
    return { kind: "proven", text: p.payload, keyId: e.keyId };
  }

  /**
   * May `bytes` go to addr? Validated: always. Otherwise from the address's 3x credit, then,
   * for a plain session or a REDIRECT (budgetOk), from its IP's byte budget.
   */
  send(addr: string, bytes: number, budgetOk: boolean, now: number): SendVerdict {
    const e = this.get(addr);
    if (e?.validated) return "sent-validated";
    if (e && AMPLIFICATION_FACTOR * e.recv - e.sent >= bytes) {
      e.sent += bytes;
      return "sent-credit";
    }
    if ((budgetOk || e?.plain === true) && this.budget.take(ipOf(addr), bytes, now)) return "sent-budget";
    return "withheld";
  }

  sweep(now: number): void {
    for (const [addr, e] of this.bound) if (now - e.lastSeen > this.opts.sessionIdleMs) this.bound.delete(addr);
    for (const [addr, e] of this.loose) if (now - e.lastSeen > this.opts.idleMs) this.loose.delete(addr);
    this.budget.sweep(now);
  }

  private makeRoom(map: Map<string, Endpoint>): void {
    while (map.size >= this.opts.maxEndpoints) {
      const oldest = map.keys().next();
      if (oldest.done) return;
      map.delete(oldest.value);
    }
  }

  get size(): number {
    return this.bound.size + this.loose.size;
  }
}
