/**
 * Who is calling, and may we believe it: the pure half of request authentication. The replay
 * check needs storage and sits behind the ReplayGuard interface.
 */
import type { Queryable } from "@pesan/shared/db";
import { isClusterName } from "@pesan/shared/names";
import { HEADERS, NONCE_RE, verifyRequest } from "./signing.ts";

/** Why a request was refused: a bounded set, used as a metric label. */
export const REFUSAL_REASONS = ["missing_auth", "unknown_sender", "wrong_receiver", "bad_signature", "clock_skew", "replay", "bad_frame", "bad_invite", "rate_limited"] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface Refusal {
  ok: false;
  status: 400 | 401 | 403 | 429;
  reason: RefusalReason;
  /** The claimed sender, cut to a safe length (it is not authenticated). */
  peer: string | undefined;
  message: string;
}

export interface Authenticated {
  ok: true;
  peer: string;
  key: string;
  nonce: string;
  timestamp: number;
}

export interface AuthRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface AuthContext {
  self: string;
  /** The shared key of each configured peer. */
  keys: ReadonlyMap<string, string>;
  now: number;
  windowMs: number;
}

export const refuse = (status: Refusal["status"], reason: RefusalReason, peer: string | undefined, message: string): Refusal => ({ ok: false, status, reason, peer, message });

const header = (h: AuthRequest["headers"], name: string): string | undefined => {
  const v = h[name];
  return typeof v === "string" ? v : undefined;
};

/**
 * The signature is checked before the timestamp, so `clock_skew` is only ever reported for a
 * genuine peer (a real clock problem worth an operator's attention), never for a forgery.
 */
export function authenticate(req: AuthRequest, ctx: AuthContext): Authenticated | Refusal {
  const from = header(req.headers, HEADERS.from);
  const to = header(req.headers, HEADERS.to);
  const ts = header(req.headers, HEADERS.timestamp);
  const nonce = header(req.headers, HEADERS.nonce);
  const signature = header(req.headers, HEADERS.signature);
  const claimed = from?.slice(0, 32);
  if (!from || !to || !ts || !nonce || !signature) return refuse(401, "missing_auth", claimed, "the request is not signed (x-pesan-* headers missing)");
  if (!isClusterName(from) || !/^\d{1,16}$/.test(ts) || !NONCE_RE.test(nonce)) return refuse(401, "missing_auth", claimed, "malformed x-pesan-* headers");
  const key = ctx.keys.get(from);
  if (key === undefined) return refuse(403, "unknown_sender", claimed, `no link with a server named ${JSON.stringify(claimed)}`);
  if (to !== ctx.self) return refuse(403, "wrong_receiver", from, `this server is ${ctx.self}, not ${JSON.stringify(to.slice(0, 32))}`);
  const timestamp = Number(ts);
  if (!verifyRequest(key, { method: req.method, path: req.path, from, to, timestamp, nonce, body: req.body }, signature)) {
    return refuse(401, "bad_signature", from, "bad signature");
  }
  if (Math.abs(ctx.now - timestamp) > ctx.windowMs) return refuse(401, "clock_skew", from, `timestamp is ${ctx.now - timestamp} ms off this server's clock (at most ${ctx.windowMs} accepted)`);
  return { ok: true, peer: from, key, nonce, timestamp };
}

/**
 * Remembers nonces until expiry; true the first time a (peer, nonce) is seen. `tx`: record it in
 * this transaction (a caller holding one must not wait for a second connection of the pool).
 */
export interface ReplayGuard {
  firstUse(peer: string, nonce: string, expiresAt: Date, tx?: Queryable): Promise<boolean>;
  prune(now: Date): Promise<void>;
}

/** In memory: for tests, and for anything that needs no memory across restarts. */
export class MemoryReplayGuard implements ReplayGuard {
  private readonly seen = new Map<string, number>();

  async firstUse(peer: string, nonce: string, expiresAt: Date): Promise<boolean> {
    const k = `${peer} ${nonce}`;
    if (this.seen.has(k)) return false;
    this.seen.set(k, expiresAt.getTime());
    return true;
  }

  async prune(now: Date): Promise<void> {
    for (const [k, exp] of this.seen) if (exp < now.getTime()) this.seen.delete(k);
  }

  get size(): number {
    return this.seen.size;
  }
}

/** A nonce must be remembered as long as its timestamp would still pass the window check. */
export function nonceExpiry(timestamp: number, windowMs: number): Date {
  return new Date(timestamp + windowMs + 1000);
}
