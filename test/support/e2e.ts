/**
 * Shared helpers for the end-to-end test files (protocol, delivery, sessions, routers, crash,
 * bad-input): timing, logged-in clients, exact-tag requests, SQL on the test database and
 * metrics of a service process. Everything talks to 127.0.0.1 only.
 */
import type { ServiceProcess } from "@pesan/cluster";
import { RawClient } from "./udp.ts";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const ISO_TIME = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z";
export const ID = "[A-Za-z0-9_.:-]{1,40}";
export const ID_RE = /^[A-Za-z0-9_.:-]{1,40}$/;

/** Escapes a string for use inside a RegExp. */
export function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The id of `OK SENT <id> DELIVERED|STORED`, or throws with the reply. */
export function sentId(reply: string): string {
  const m = /^OK SENT (\S+) (DELIVERED|STORED)$/.exec(reply);
  if (!m) throw new Error(`not an OK SENT reply: ${JSON.stringify(reply)}`);
  return m[1]!;
}

/** Opens a client and logs in (registering first when asked); returns the client and its token. */
export async function loginClient(address: string, user: string, password: string, opts: { register?: boolean; capAck?: boolean } = {}): Promise<{ c: RawClient; token: string }> {
  const c = await RawClient.open(address);
  if (opts.register) {
    const r = await c.request(`REGISTER ${user} ${password}`);
    if (r !== `OK REGISTERED ${user}`) throw new Error(`REGISTER ${user}: ${r}`);
  }
  if (opts.capAck) {
    const r = await c.request("CAP ACK");
    if (r !== "OK CAP ACK") throw new Error(`CAP ACK: ${r}`);
  }
  const r = await c.request(`LOGIN ${user} ${password}`);
  // The session key follows the token (protocol v2).
  const m = new RegExp(`^OK LOGIN ${re(user)} (\\S+) \\S+$`).exec(r);
  if (!m) throw new Error(`LOGIN ${user}: ${r}`);
  // the ONLINE push follows the reply
  await c.waitFor(/^ONLINE /);
  return { c, token: m[1]! };
}

/** Sends `@<tag> <line>` with a tag chosen by the caller; waits for the final tagged reply. */
export async function requestWithTag(c: RawClient, tag: string, line: string, timeoutMs = 5000): Promise<string> {
  const from = c.lines.length;
  c.send(`@${tag} ${line}`);
  const reply = await c.waitFor((l) => l.startsWith(`@${tag} `) && /^@\S+ (OK |ERR |yes$|MSG )/.test(l), timeoutMs, from);
  return reply.slice(tag.length + 2);
}

/** Lines received since index `from` that match. */
export function linesMatching(c: RawClient, match: RegExp, from = 0): string[] {
  return c.lines.slice(from).filter((l) => match.test(l));
}

/** Runs SQL on a database (a fresh connection each time: tests issue few queries). */
export { queryRows as sql } from "./db.ts";

/** The sum of a metric's samples in a service's /metrics: all label sets, or those with every label of `labels`. */
export async function metricSum(p: ServiceProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${p.httpPort}/metrics`, { signal: AbortSignal.timeout(3000) });
  const text = await r.text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^(\S+?)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? "").slice(1, -1).split(",");
    if (wanted.every((w) => have.includes(w))) sum += Number(m[3]);
  }
  return sum;
}

export async function healthStatus(p: ServiceProcess): Promise<number> {
  try {
    const r = await fetch(`http://127.0.0.1:${p.httpPort}/healthz`, { signal: AbortSignal.timeout(3000) });
    return r.status;
  } catch {
    return 0;
  }
}

/** Sends `/@live?` every intervalMs until stopped (keeps a session's lease alive). */
export function heartbeat(c: RawClient, intervalMs = 300): { stop(): void } {
  const t = setInterval(() => c.send("/@live?"), intervalMs);
  return { stop: () => clearInterval(t) };
}

/** A small deterministic PRNG (mulberry32) for reproducible random input. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A real client's retry loop: sends `@<tag> <line>` and, when no final reply comes within
 * retryMs or the reply is `ERR UNAVAILABLE`, sends the very same datagram again (same tag),
 * until deadlineMs. Returns the final reply (untagged) and how many times it was sent.
 */
export async function requestWithRetry(c: RawClient, tag: string, line: string, o: { retryMs?: number; deadlineMs?: number } = {}): Promise<{ reply: string; sends: number }> {
  const retryMs = o.retryMs ?? 1000;
  const deadline = Date.now() + (o.deadlineMs ?? 20_000);
  let sends = 0;
  for (;;) {
    const from = c.lines.length;
    c.send(`@${tag} ${line}`);
    sends++;
    let reply: string | undefined;
    try {
      reply = (await c.waitFor((l) => l.startsWith(`@${tag} `) && /^@\S+ (OK |ERR |yes$|MSG )/.test(l), retryMs, from)).slice(tag.length + 2);
    } catch {
      reply = undefined;
    }
    if (reply !== undefined && !reply.startsWith("ERR UNAVAILABLE")) return { reply, sends };
    if (Date.now() >= deadline) throw new Error(`no reply to @${tag} ${line} after ${sends} sends (last: ${reply ?? "none"})`);
    if (reply !== undefined) await sleep(100);
  }
}

/**
 * Sends datagrams at a target rate for durationMs (paced in ~5 ms ticks to keep up with the
 * clock), never more than rate × duration in all. Returns how many were sent.
 */
export async function pacedSend(send: (i: number) => void, ratePerSec: number, durationMs: number): Promise<number> {
  const total = Math.round((ratePerSec * durationMs) / 1000);
  const t0 = Date.now();
  let sent = 0;
  while (sent < total && Date.now() - t0 < durationMs + 500) {
    const due = Math.min(total, Math.floor(((Date.now() - t0) * ratePerSec) / 1000));
    while (sent < due) send(sent++);
    await sleep(5);
  }
  return sent;
}

/**
 * Sends `line` with one tag until it is answered OK (the server acts on a tag once), through a
 * gateway that may die meanwhile; resolves with the time of the OK, throws after deadlineMs.
 */
export async function sendUntilAccepted(
  c: { request(line: string, o: { tag: string; timeoutMs: number }): Promise<Array<{ kind: string }>> },
  line: string,
  tag: string,
  o: { timeoutMs: number; pauseMs: number; deadlineMs: number },
): Promise<number> {
  const deadline = Date.now() + o.deadlineMs;
  while (Date.now() < deadline) {
    try {
      const lines = await c.request(line, { tag, timeoutMs: o.timeoutMs });
      if (lines[lines.length - 1]!.kind === "OK") return Date.now();
    } catch {
      // no answer: the gateway is gone or the balancer is moving us; the same tag again
    }
    await sleep(o.pauseMs);
  }
  throw new Error(`${tag} (${line.split(" ")[0]}) never accepted`);
}

/**
 * `total` SENDs paced `everyMs` apart, each retried with its own tag until OK (sendUntilAccepted),
 * with `kill()` run after the `killAt`-th is sent. Resolves once every one is accepted, with the
 * kill's time and the gap between the last OK before it and the first OK after it.
 */
export async function sendsThroughKill(
  c: Parameters<typeof sendUntilAccepted>[0],
  o: { total: number; everyMs: number; killAt: number; kill: () => Promise<void>; line: (i: number) => string; tag: (i: number) => string; retry: { timeoutMs: number; pauseMs: number; deadlineMs: number } },
): Promise<{ killedAt: number; gapMs: number }> {
  const okAt: number[] = [];
  const inflight: Array<Promise<void>> = [];
  let killedAt = 0;
  const started = Date.now();
  for (let i = 0; i < o.total; i++) {
    inflight.push(sendUntilAccepted(c, o.line(i), o.tag(i), o.retry).then((t) => void okAt.push(t)));
    if (i === o.killAt) {
      killedAt = Date.now();
      await o.kill();
    }
    await sleep(Math.max(0, started + (i + 1) * o.everyMs - Date.now()));
  }
  await Promise.all(inflight);
  okAt.sort((x, y) => x - y);
  const before = okAt.filter((t) => t <= killedAt).pop() ?? killedAt;
  return { killedAt, gapMs: okAt.find((t) => t > killedAt)! - before };
}
