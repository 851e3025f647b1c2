import { RawClient } from "./udp.ts";
/**
 * What the outage tests check on every service process: it kept its PID, its /healthz said 503
 * naming the dependency while it was away, and 200 again afterwards; and, for a counted load,
 * that every SEND is stored exactly once under the id its sender was told and was pushed to
 * its recipient.
 */
import type { ServiceProcess } from "@pesan/cluster";
import { sentId, sleep, sql } from "./e2e.ts";
import type { CountedLoad } from "./load.ts";

export interface Health {
  status: number;
  checks: Record<string, string>;
}

export async function health(p: ServiceProcess): Promise<Health> {
  try {
    const r = await fetch(`http://127.0.0.1:${p.httpPort}/healthz`, { signal: AbortSignal.timeout(3000) });
    const body = (await r.json()) as { checks?: Record<string, string> };
    return { status: r.status, checks: body.checks ?? {} };
  } catch (e) {
    return { status: 0, checks: { fetch: (e as Error).message } };
  }
}

/** Polls until every process answers 503 with `dep`'s check failing; returns those answers. */
export async function waitUnhealthy(procs: ServiceProcess[], dep: (p: ServiceProcess) => string, timeoutMs = 10_000): Promise<Map<ServiceProcess, Health>> {
  const seen = new Map<ServiceProcess, Health>();
  const deadline = Date.now() + timeoutMs;
  while (seen.size < procs.length) {
    for (const p of procs) {
      if (seen.has(p)) continue;
      const h = await health(p);
      if (h.status === 503 && h.checks[dep(p)] !== undefined && h.checks[dep(p)] !== "ok") seen.set(p, h);
    }
    if (seen.size < procs.length && Date.now() > deadline) {
      const missing = await Promise.all(procs.filter((p) => !seen.has(p)).map(async (p) => `${p.id}: ${JSON.stringify(await health(p))}`));
      throw new Error(`not 503 naming the dependency within ${timeoutMs} ms:\n${missing.join("\n")}`);
    }
    await sleep(100);
  }
  return seen;
}

/** Polls until every process answers 200; returns how long each took from `since` (ms). */
export async function waitHealthy(procs: ServiceProcess[], since: number, timeoutMs = 10_000): Promise<Map<ServiceProcess, number>> {
  const took = new Map<ServiceProcess, number>();
  const deadline = Date.now() + timeoutMs;
  while (took.size < procs.length) {
    for (const p of procs) if (!took.has(p) && (await health(p)).status === 200) took.set(p, Date.now() - since);
    if (took.size < procs.length && Date.now() > deadline) {
      const missing = await Promise.all(procs.filter((p) => !took.has(p)).map(async (p) => `${p.id}: ${JSON.stringify(await health(p))}`));
      throw new Error(`not healthy again within ${timeoutMs} ms:\n${missing.join("\n")}`);
    }
    await sleep(50);
  }
  return took;
}

export function pids(procs: ServiceProcess[]): Map<ServiceProcess, number | undefined> {
  return new Map(procs.map((p) => [p, p.proc?.pid]));
}

/** Every process still runs under the PID it had before (nothing exited and came back). */
export function expectSamePids(before: Map<ServiceProcess, number | undefined>): void {
  const changed = [...before].filter(([p, pid]) => !p.running || p.proc?.pid !== pid).map(([p, pid]) => `${p.id}: ${pid} -> ${p.running ? p.proc?.pid : "exited"}`);
  expect(changed).toEqual([]);
}

/**
 * The load's ledger against the database and the receivers: each SEND answered OK SENT, stored
 * once (no body twice, none missing, nothing extra), under the id its sender was told, and
 * pushed to its recipient. Returns counts for the log.
 */
export async function expectExactlyOnce(dbUrl: string, load: CountedLoad, label: string, deliveryTimeoutMs = 30_000): Promise<{ sent: number; retried: number; unavailable: number; lost: number; duplicated: number }> {
  const { sent } = load;
  const bad = sent.filter((m) => !/^OK SENT \S+ (DELIVERED|STORED)$/.test(m.reply ?? ""));
  expect(bad.map((m) => [m.tag, m.reply])).toEqual([]);
  const rows = await sql<{ body: string; n: number; id: string }>(dbUrl, "SELECT body, count(*)::int AS n, min(id) AS id FROM messages WHERE body LIKE $1 GROUP BY body", [`${label} %`]);
  const stored = new Map(rows.map((r) => [r.body, r.id]));
  // As measured, for the callers' reports: acknowledged SENDs not in the database, and copies
  // stored beyond the first. The expectations below fail on either.
  const lost = sent.filter((m) => /^OK SENT /.test(m.reply ?? "") && !stored.has(m.body)).length;
  const duplicated = rows.reduce((n, r) => n + r.n - 1, 0);
  expect(rows.filter((r) => r.n !== 1)).toEqual([]);
  expect(sent.filter((m) => !stored.has(m.body)).map((m) => m.tag)).toEqual([]);
  expect(rows.length).toBe(sent.length);
  expect(sent.filter((m) => stored.get(m.body) !== sentId(m.reply!)).map((m) => [m.tag, m.reply, stored.get(m.body)])).toEqual([]);
  // Every recipient was pushed every message addressed to it (resends until ACK cover pushes
  // that a restart swallowed).
  const deadline = Date.now() + deliveryTimeoutMs;
  for (;;) {
    const missing = sent.filter((m) => !load.receivedIds(m.pair).has(stored.get(m.body)!));
    if (missing.length === 0) break;
    if (Date.now() > deadline) expect(missing.map((m) => m.tag)).toEqual([]);
    await sleep(200);
  }
  return { sent: sent.length, retried: sent.filter((m) => (m.sends ?? 0) > 1).length, unavailable: load.unavailable(), lost, duplicated };
}

/**
 * Milliseconds from `since` until a fresh heartbeat through `address` is answered (each try a
 * new tag, so an answer to one sent while a dependency was away does not count); -1 after
 * timeoutMs (15 s). The heartbeat goes through router and database, and its answer fits the 3x bound.
 */
export async function firstAnswerAfter(address: string, since: number, timeoutMs = 15_000): Promise<number> {
  const probe = await RawClient.open(address);
  try {
    for (let i = 0; Date.now() - since < timeoutMs; i++) {
      const from = probe.lines.length;
      probe.send(`@probe${i} /@live?`);
      try {
        await probe.waitFor((l) => l === `@probe${i} yes`, 200, from);
        return Date.now() - since;
      } catch {
        // not yet
      }
    }
    return -1;
  } finally {
    probe.close();
  }
}
