/**
 * Throttling of failed password checks (LOGIN, UNREGISTER), as pure functions of the stored
 * failure counts and an injected clock. The counts live in Postgres (throttle-store.ts), which
 * every router of a cluster shares.
 *
 * Three counters, each a leaky count of failures (it drains by one for every whole `decayMs`
 * since the last failure; a new failure restarts that clock, so steady guessing never drains):
 * - per (account, IP): the attacker at one address guessing one account;
 * - per IP: one address guessing many accounts;
 * - per account, with a much higher free allowance: many addresses guessing one account. An
 *   (account, IP) that logged in with the right password within TRUST_MS is exempt from it,
 *   so a distributed guess cannot lock the owner out from where they usually log in.
 * A counter at or above `free` blocks further attempts for `baseMs * 2^(count - free)` (at
 * most `maxMs`) after its last failure. A blocked attempt is answered at once and costs no
 * hash, and does not count: the attacker cannot push the block out further by hammering.
 */

export interface ThrottleRule {
  /** Failures allowed without any delay. */
  free: number;
  baseMs: number;
  maxMs: number;
  /** One failure is forgotten per this many ms. */
  decayMs: number;
}

export const RULES = {
  pair: { free: 5, baseMs: 1000, maxMs: 15 * 60_000, decayMs: 5 * 60_000 },
  ip: { free: 20, baseMs: 1000, maxMs: 15 * 60_000, decayMs: 60_000 },
  account: { free: 100, baseMs: 1000, maxMs: 5 * 60_000, decayMs: 60_000 },
} as const satisfies Record<string, ThrottleRule>;

export type RuleName = keyof typeof RULES;

/** A right password from an (account, IP) exempts it from the account-wide counter this long. */
export const TRUST_MS = 30 * 24 * 3_600_000;

export interface Failures {
  count: number;
  /** When the last failure was counted (ms since the epoch). */
  last: number;
}

/** The count as of `now`, after the leak since the last failure. */
export function effectiveCount(rule: ThrottleRule, f: Failures | undefined, now: number): number {
  if (!f) return 0;
  return Math.max(0, f.count - Math.floor(Math.max(0, now - f.last) / rule.decayMs));
}

/** The counter after one more failure at `now` (throttle-store.ts does the same in SQL). */
export function afterFailure(rule: ThrottleRule, f: Failures | undefined, now: number): Failures {
  return { count: effectiveCount(rule, f, now) + 1, last: now };
}

/** How long attempts stay blocked by this counter, from `now`; 0 when not blocked. */
export function blockedFor(rule: ThrottleRule, f: Failures | undefined, now: number): number {
  if (!f) return 0;
  // The count as it stood at the last failure decides the delay that failure earned.
  if (f.count < rule.free) return 0;
  const delay = Math.min(rule.maxMs, rule.baseMs * 2 ** (f.count - rule.free));
  return Math.max(0, f.last + delay - now);
}

/** The row keys of the counters for one attempt (and the trust mark of the pair). */
export function throttleKeys(user: string, ip: string): Record<RuleName | "trusted", string> {
  return { pair: `p ${user} ${ip}`, ip: `i ${ip}`, account: `a ${user}`, trusted: `t ${user} ${ip}` };
}

export interface ThrottleState {
  pair?: Failures;
  ip?: Failures;
  account?: Failures;
  /** When the pair last logged in with the right password (ms), if it did. */
  trustedAt?: number;
}

export type Verdict = { limited: false } | { limited: true; retryAfterMs: number; rule: RuleName };

/** Whether an attempt may go ahead (and be hashed) now. */
export function verdict(s: ThrottleState, now: number): Verdict {
  const trusted = s.trustedAt !== undefined && now - s.trustedAt < TRUST_MS;
  let worst: Verdict = { limited: false };
  for (const rule of ["pair", "ip", "account"] as const) {
    if (rule === "account" && trusted) continue;
    const ms = blockedFor(RULES[rule], s[rule], now);
    if (ms > 0 && (!worst.limited || ms > worst.retryAfterMs)) worst = { limited: true, retryAfterMs: ms, rule };
  }
  return worst;
}

/** The text of `ERR RATE_LIMITED` for a blocked attempt: when to try again, in whole seconds. */
export function limitedText(retryAfterMs: number): string {
  return `too many failed attempts, try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`;
}

/**
 * The address whose failures count as one IP: the host of `ip:port`, except behind a proxy
 * that hides client addresses (nginx in front of the gateways): there every client shares the
 * proxy's IP, so the whole `ip:port` (one port per client) stands for the client.
 */
export function clientIp(addr: string, proxies: ReadonlySet<string>): string {
  const i = addr.lastIndexOf(":");
  if (i <= 0) return addr;
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return proxies.has(host) ? addr : host;
}
