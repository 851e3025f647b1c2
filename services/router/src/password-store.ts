/**
 * The SQL of the password work: throttle counters (auth_throttle, shared by the routers) and
 * the marks of queued requests done (password_requests_done). Migration 008.
 */
import type { Queryable } from "@pesan/shared/db";
import { RULES, throttleKeys, TRUST_MS, type ThrottleState } from "./throttle.ts";

/** Counters quiet this long are forgotten (any block they caused ended long before). */
export const FORGET_AFTER_MS = 24 * 3_600_000;

const pairKey = (user: string, ip: string) => `${user} ${ip}`;

/** The throttle state of each (user, ip) attempt, keyed `user ip`. */
export async function loadThrottle(q: Queryable, attempts: Array<{ user: string; ip: string }>): Promise<Map<string, ThrottleState>> {
  const out = new Map<string, ThrottleState>();
  if (attempts.length === 0) return out;
  const keys = new Set<string>();
  for (const a of attempts) for (const k of Object.values(throttleKeys(a.user, a.ip))) keys.add(k);
  const r = await q.query<{ key: string; failures: number; at: Date | string }>("SELECT key, failures, at FROM auth_throttle WHERE key = ANY($1::text[])", [[...keys]]);
  const rows = new Map(r.rows.map((x) => [x.key, { count: Number(x.failures), last: new Date(x.at).getTime() }]));
  for (const a of attempts) {
    const k = throttleKeys(a.user, a.ip);
    const s: ThrottleState = {};
    const pair = rows.get(k.pair);
    const ip = rows.get(k.ip);
    const account = rows.get(k.account);
    if (pair) s.pair = pair;
    if (ip) s.ip = ip;
    if (account) s.account = account;
    const trusted = rows.get(k.trusted);
    if (trusted) s.trustedAt = trusted.last;
    out.set(pairKey(a.user, a.ip), s);
  }
  return out;
}

export function throttleOf(states: Map<string, ThrottleState>, user: string, ip: string): ThrottleState {
  return states.get(pairKey(user, ip)) ?? {};
}

/**
 * One more failure on each counter of the attempt, leaked first as throttle.ts afterFailure
 * does (one failure per whole decayMs since the last). Keys in sorted order, so two routers
 * counting at once lock the rows in one order.
 */
export async function recordFailure(q: Queryable, user: string, ip: string, now: Date): Promise<void> {
  const k = throttleKeys(user, ip);
  await q.query(
    `INSERT INTO auth_throttle (key, failures, at) SELECT k, 1, $2 FROM unnest($1::text[]) AS x(k) ORDER BY k
     ON CONFLICT (key) DO UPDATE SET at = EXCLUDED.at, failures = 1 + greatest(0, auth_throttle.failures - floor(
       greatest(0, extract(epoch FROM (EXCLUDED.at - auth_throttle.at)) * 1000)
       / (CASE left(auth_throttle.key, 1) WHEN 'p' THEN $3::float8 WHEN 'i' THEN $4::float8 ELSE $5::float8 END))::int)`,
    [[k.pair, k.ip, k.account].sort(), now, RULES.pair.decayMs, RULES.ip.decayMs, RULES.account.decayMs],
  );
}

/** The right password: the pair's own failures are forgotten and the pair is trusted (throttle.ts). */
export async function recordSuccess(q: Queryable, user: string, ip: string, now: Date): Promise<void> {
  const k = throttleKeys(user, ip);
  await q.query("DELETE FROM auth_throttle WHERE key = $1", [k.pair]);
  await q.query("INSERT INTO auth_throttle (key, failures, at) VALUES ($1, 0, $2) ON CONFLICT (key) DO UPDATE SET at = EXCLUDED.at", [k.trusted, now]);
}

export async function pruneThrottle(q: Queryable, now: Date): Promise<void> {
  await q.query("DELETE FROM auth_throttle WHERE key NOT LIKE 't %' AND at < $1", [new Date(now.getTime() - FORGET_AFTER_MS)]);
  await q.query("DELETE FROM auth_throttle WHERE key LIKE 't %' AND at < $1", [new Date(now.getTime() - TRUST_MS)]);
}

/** Marks a queued request done, in the transaction that does it; false if it was already done. */
export async function markDone(q: Queryable, id: string, now: Date): Promise<boolean> {
  const r = await q.query("INSERT INTO password_requests_done (id, done_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", [id, now]);
  return r.rowCount === 1;
}

export async function pruneDone(q: Queryable, before: Date): Promise<void> {
  await q.query("DELETE FROM password_requests_done WHERE done_at < $1", [before]);
}

/** REGISTERs queued (written before their jobs start, so a LOGIN elsewhere can wait for them). */
export async function registrationsQueued(q: Queryable, rows: Array<{ id: string; name: string }>, now: Date): Promise<void> {
  if (rows.length === 0) return;
  await q.query("INSERT INTO registrations_in_flight (id, name, since) SELECT i, n, $3 FROM unnest($1::text[], $2::text[]) AS x(i, n) ON CONFLICT (id) DO NOTHING", [
    rows.map((r) => r.id),
    rows.map((r) => r.name),
    now,
  ]);
}

/** A queued REGISTER is done (in its transaction) or dropped. */
export async function registrationDone(q: Queryable, id: string): Promise<void> {
  await q.query("DELETE FROM registrations_in_flight WHERE id = $1", [id]);
}

/** Whether a REGISTER of this name queued since `since` is still to be done. */
export async function registrationPending(q: Queryable, name: string, since: Date): Promise<boolean> {
  const r = await q.query<{ pending: boolean }>("SELECT EXISTS (SELECT 1 FROM registrations_in_flight WHERE name = $1 AND since >= $2) AS pending", [name, since]);
  return r.rows[0]?.pending === true;
}

export async function pruneRegistrations(q: Queryable, before: Date): Promise<void> {
  await q.query("DELETE FROM registrations_in_flight WHERE since < $1", [before]);
}
