#!/usr/bin/env node
/**
 * `pnpm bench`: P sender/receiver pairs of UDP clients through a process cluster (default 2
 * gateways, 2 routers) against Postgres and Redis. Phases:
 *   steady   every sender keeps W tagged SENDs in flight for S seconds: delivered messages/s
 *   latency  an open-loop offered load (default 2,000 messages/s): p50/p95/p99 send->MSG
 *   offline  receivers offline: messages stored, then delivered when they log in
 * Senders retry an unanswered SEND with the same tag (the server's exactly-once rule), so a
 * message counts as lost only if its recipient never got it. Prints one JSON line on stdout.
 */
import { randomBytes } from "node:crypto";
import { numberOption, parseCli } from "./args.ts";
import { Peer, resendUnanswered, type InFlight } from "./bench-client.ts";
import pg from "pg";
import { startCluster, type Cluster } from "./cluster.ts";
import { cpuBetween, cpuMs, isLocalHost, parentOf, peakRssMb, processName, redisPidFromInfo, serverCpuMs } from "./proc-stats.ts";
import { dropKeys } from "./redis-keys.ts";
import { cleanupOnSignals, once } from "./interrupt.ts";
import { createRedisClient, isCluster } from "@pesan/shared/bus";
import { parseRedisUrl } from "@pesan/shared/config";

const HELP = `usage: pnpm bench [--mode single|cross|failover|soak] [--pairs 50] [--window 64] [--seconds 10] [--rate 2000] [--latency-seconds 5]
                  [--offline 5000] [--gateways 2] [--routers 2] [--shards 1] [--proofs on|off] [--client-ips 1] [--logs DIR]

--mode soak: a long steady load with a router killed every few minutes (pnpm bench --mode soak --help).
--proofs off (single mode) runs the clients as plain (protocol v1) sessions, to measure what proofs cost.
--client-ips N spreads the users over N loopback addresses (127.0.0.2 and up), as real users
come from addresses of their own; 1 (the default) sends all from 127.0.0.1, as ../shared/bench-peers
does, so that every per-IP budget (docs/protocol.md "Security") is shared by every user.
The JSON line also gives the CPU each kind of process spent per delivered message in the
steady phase (cpu_us_per_msg) and every process's peak RSS in MiB (peak_rss_mb).
cpu_us_per_msg.postgres and .redis are the servers' (Postgres: the postmaster and every process
it started, its other databases' work included; Redis: redis-server), given only when
DATABASE_URL / REDIS_URL name this machine (loopback) and the server's process is found here
(not in a container); else they are left out.

Needs Postgres and Redis: DATABASE_URL (a role that may CREATE DATABASE; default
postgres://postgres@127.0.0.1:5432/postgres) and REDIS_URL (default redis://127.0.0.1:6379).
It creates and drops its own database and key prefix. Progress goes to stderr, the result
(one JSON line) to stdout.
`;

interface Opts {
  pairs: number;
  window: number;
  seconds: number;
  rate: number;
  latencySeconds: number;
  offline: number;
  gateways: number;
  routers: number;
  /** BUS_SHARDS of the gateways and routers: streams the `in` stream is split into. */
  shards: number;
  proofs: boolean;
  clientIps: number;
  logs: string | undefined;
}

/** The address user number n sends from: 127.0.0.1 for one address, else 127.0.0.2 and up (at most 253). */
function clientIp(ips: number, n: number): string {
  return ips <= 1 ? "127.0.0.1" : `127.0.0.${2 + (n % Math.min(ips, 253))}`;
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * The bench measures messaging: its users log in with a cheap hash (2^10), or the default's
 * 2^17 (about 4 logins/s per router on 2 cores) would make the set-up the longest phase.
 * PASSWORD_HASH_COST in the environment overrides it.
 */
const BENCH_HASH_COST = { PASSWORD_HASH_COST: process.env.PASSWORD_HASH_COST ?? "10" };

/**
 * Plain sessions never validate their address, so the gateway sends them at most
 * PLAIN_BYTES_PER_IP (64 KiB/s) beyond 3x what they sent, and all the bench's clients share
 * 127.0.0.1. --proofs off measures the protocol's cost without proofs, so it lifts that budget.
 */
const PLAIN_UNBOUNDED = { PLAIN_BYTES_PER_IP: "1000000000" };

interface Pair {
  sender: Peer;
  receiver: Peer;
  s: string;
  r: string;
}

interface PhaseResult {
  sent: number;
  /** Distinct messages received within the timed window (steady) or in all (paced). */
  delivered: number;
  /** Distinct messages received, drain included. */
  total: number;
  latencies: number[];
  elapsedMs: number;
  unanswered: number;
}

/**
 * Runs one load phase: `next()` says whether a sender may send now; every reply frees a slot;
 * every MSG a receiver gets is counted once per id.
 */
async function runPhase(
  pairs: Pair[],
  phase: string,
  opts: { window: number; durationMs: number; ratePerSec?: number },
): Promise<PhaseResult> {
  let sent = 0;
  const latencies: number[] = [];
  const seen = new Set<string>();
  const started = performance.now();
  const stopAt = started + opts.durationMs;
  const inflight = pairs.map(() => new Map<string, InFlight>());
  let seq = 0;
  pairs.forEach((p, i) => {
    p.sender.onLine = (l) => {
      const sp = l.indexOf(" ");
      const tag = l.slice(1, sp);
      // ERR UNAVAILABLE: the backend was slow; the retry (same tag) gets the real answer.
      if (l.startsWith("ERR UNAVAILABLE", sp + 1)) return;
      if (inflight[i]!.delete(tag)) pump(i);
    };
    p.receiver.onLine = (l) => {
      if (!l.startsWith("MSG ")) return;
      const parts = l.split(" ", 6);
      const id = parts[1]!;
      if (seen.has(id)) return;
      seen.add(id);
      // text: "<phase> <sentAt ms>"
      if (parts[4] === phase) latencies.push(performance.now() - Number(parts[5]));
    };
  });
  const sendOne = (i: number) => {
    const tag = `${phase[0]}${(seq++).toString(36)}`;
    const line = `SEND ${pairs[i]!.r} ${phase} ${performance.now().toFixed(3)}`;
    inflight[i]!.set(tag, { line, at: performance.now() });
    pairs[i]!.sender.send(`@${tag} ${line}`);
    sent++;
  };
  const pump = (i: number) => {
    if (opts.ratePerSec !== undefined) return;
    while (performance.now() < stopAt && inflight[i]!.size < opts.window) sendOne(i);
  };
  // Retry what got no answer in 2 s, with the same tag: the server answers it once.
  const retry = resendUnanswered(pairs.map((p) => p.sender), inflight);
  let paced: NodeJS.Timeout | undefined;
  if (opts.ratePerSec !== undefined) {
    const perTick = opts.ratePerSec / 1000; // 1 ms ticks, carried fraction
    let credit = 0;
    let turn = 0;
    paced = setInterval(() => {
      if (performance.now() >= stopAt) return;
      credit += perTick * 5;
      while (credit >= 1) {
        credit -= 1;
        sendOne(turn++ % pairs.length);
      }
    }, 5);
  } else pairs.forEach((_, i) => pump(i));
  await new Promise((r) => setTimeout(r, opts.durationMs));
  const elapsedMs = performance.now() - started;
  const deliveredInWindow = seen.size;
  clearInterval(paced);
  // Drain: let replies and pushes in flight arrive (and retries complete).
  const drainUntil = performance.now() + 15_000;
  while (performance.now() < drainUntil && (inflight.some((m) => m.size > 0) || seen.size < sent)) await new Promise((r) => setTimeout(r, 100));
  if (seen.size < sent) log(`${phase}: ${sent - seen.size} of ${sent} not received after draining`);
  clearInterval(retry);
  const unanswered = inflight.reduce((a, m) => a + m.size, 0);
  return {
    sent,
    delivered: opts.ratePerSec === undefined ? deliveredInWindow : seen.size,
    total: seen.size,
    latencies: latencies.sort((a, b) => a - b),
    elapsedMs,
    unanswered,
  };
}

/**
 * The pids of the Postgres server (its postmaster: the parent of this connection's backend)
 * and of redis-server (each master's, `redis-1` ... on Redis Cluster), when they run on this
 * machine; the bench counts their CPU per message.
 */
async function localServers(admin: pg.Client, databaseUrl: string, redisUrl: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (isLocalHost(new URL(databaseUrl).hostname)) {
    const backend = Number((await admin.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid);
    const p = parentOf(backend);
    // A pid from a server in a container names some other process here, or none.
    if (p && p.name.startsWith("postgres") && p.parentName.startsWith("postgres")) out.set("postgres", p.pid);
    else log("Postgres's processes are not on this machine: no cpu_us_per_msg.postgres");
  }
  const target = parseRedisUrl(redisUrl);
  const hosts = target.kind === "single" ? [new URL(target.url).hostname] : target.kind === "cluster" ? target.nodes.map((n) => n.host) : target.sentinels.map((s) => s.host);
  if (hosts.every(isLocalHost)) {
    const r = createRedisClient(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
    try {
      await r.connect();
      const nodes = isCluster(r) ? r.nodes("master") : [r];
      const pids = (await Promise.all(nodes.map(async (n) => redisPidFromInfo(await n.info("server"))))).filter((pid) => pid !== undefined && processName(pid)?.startsWith("redis-server"));
      if (pids.length === nodes.length) pids.forEach((pid, i) => out.set(pids.length === 1 ? "redis" : `redis-${i + 1}`, pid!));
      else log("redis-server is not on this machine: no cpu_us_per_msg.redis");
    } finally {
      r.disconnect();
    }
  }
  return out;
}

async function main(): Promise<void> {
  // --mode cross|failover: two linked clusters (bench-peers.ts); single (default) is below.
  const mi = process.argv.indexOf("--mode");
  if (mi >= 0) {
    const mode = process.argv[mi + 1] ?? "";
    process.argv.splice(mi, 2);
    if (!["single", "cross", "failover", "soak"].includes(mode)) {
      process.stderr.write(`--mode: single, cross, failover or soak (got ${JSON.stringify(mode)})\n\n${HELP}`);
      process.exit(2);
    }
    if (mode === "soak") return (await import("./soak.ts")).main(process.argv.slice(2));
    if (mode !== "single") return (await import("./bench-peers.ts")).main(mode, process.argv.slice(2));
  }
  const values = parseCli(
    {
      pairs: { type: "string", default: "50" },
      window: { type: "string", default: "64" },
      seconds: { type: "string", default: "10" },
      rate: { type: "string", default: "2000" },
      "latency-seconds": { type: "string", default: "5" },
      offline: { type: "string", default: "5000" },
      gateways: { type: "string", default: "2" },
      routers: { type: "string", default: "2" },
      shards: { type: "string", default: "1" },
      proofs: { type: "string", default: "on" },
      "client-ips": { type: "string", default: "1" },
      logs: { type: "string" },
    },
    HELP,
  );
  if (!values) return;
  const num = (k: string, v: string, min: number) => numberOption(k, v, min, false);
  const o: Opts = {
    pairs: num("pairs", values.pairs, 1),
    window: num("window", values.window, 1),
    seconds: num("seconds", values.seconds, 1),
    rate: num("rate", values.rate, 1),
    latencySeconds: num("latency-seconds", values["latency-seconds"], 0),
    offline: num("offline", values.offline, 0),
    gateways: num("gateways", values.gateways, 1),
    routers: num("routers", values.routers, 1),
    shards: num("shards", values.shards, 1),
    proofs: values.proofs === "on",
    clientIps: num("client-ips", values["client-ips"], 1),
    logs: values.logs,
  };
  if (values.proofs !== "on" && values.proofs !== "off") {
    process.stderr.write(`--proofs must be on or off (got ${JSON.stringify(values.proofs)})\n`);
    process.exit(2);
  }
  const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const dbName = `pesan_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  const prefix = `pesanbench:${randomBytes(3).toString("hex")}:`;
  let cluster: Cluster | undefined;
  // A signal during the start must stop what it started too: the clean-up waits for it.
  let starting: Promise<Cluster> | undefined;
  const peers: Peer[] = [];
  const cleanup = once(async () => {
    for (const p of peers) p.close();
    await (cluster ?? (await starting?.catch(() => undefined)))?.stop();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await dropKeys(redisUrl, prefix);
  });
  const offSignals = cleanupOnSignals(cleanup, log);
  try {
    log(`starting ${o.gateways} gateway(s) and ${o.routers} router(s), database ${dbName}, Redis key prefix ${prefix}`);
    starting = startCluster({ databaseUrl: u.toString(), redisUrl, gateways: o.gateways, routers: o.routers, busPrefix: prefix, logDir: o.logs, env: { LOG_LEVEL: "warn", BUS_SHARDS: String(o.shards), ...BENCH_HASH_COST, ...(o.proofs ? {} : PLAIN_UNBOUNDED) } });
    cluster = await starting;
    const addrs = cluster.addresses;
    const run = randomBytes(2).toString("hex");
    const pairs: Pair[] = [];
    for (let i = 0; i < o.pairs; i++) {
      const p: Pair = {
        sender: new Peer(addrs[i % addrs.length]!, o.proofs, clientIp(o.clientIps, 2 * i)),
        receiver: new Peer(addrs[(i + 1) % addrs.length]!, o.proofs, clientIp(o.clientIps, 2 * i + 1)),
        s: `s${run}_${i}`,
        r: `r${run}_${i}`,
      };
      await p.sender.open();
      await p.receiver.open();
      peers.push(p.sender, p.receiver);
      pairs.push(p);
    }
    log(`registering and logging in ${o.pairs * 2} users`);
    await Promise.all(
      pairs.flatMap((p) => [
        (async () => {
          await p.sender.call("reg", `REGISTER ${p.s} benchpass`);
          await p.sender.call("in", `LOGIN ${p.s} benchpass`);
        })(),
        (async () => {
          await p.receiver.call("reg", `REGISTER ${p.r} benchpass`);
          await p.receiver.call("in", `LOGIN ${p.r} benchpass`);
        })(),
      ]),
    );

    log(`steady phase: ${o.pairs} pairs, ${o.window} in flight each, ${o.seconds} s`);
    const procs = new Map<string, number | undefined>([
      ...cluster.gateways.map((g, i) => [`gateway-${i + 1}`, g.proc?.pid] as const),
      ...cluster.routers.map((r, i) => [`router-${i + 1}`, r.proc?.pid] as const),
      ["bench", process.pid],
    ]);
    const servers = await localServers(admin, adminUrl, redisUrl);
    const cpuNow = () =>
      new Map([
        ...[...procs].map(([name, pid]) => [name, pid === undefined ? undefined : cpuMs(pid)] as const),
        ...[...servers].map(([name, pid]) => [name, serverCpuMs(pid)] as const),
      ]);
    const cpuBefore = cpuNow();
    const steady = await runPhase(pairs, "steady", { window: o.window, durationMs: o.seconds * 1000 });
    const cpuSteady = cpuBetween(cpuBefore, cpuNow());
    const rate = steady.delivered / (steady.elapsedMs / 1000);
    log(`steady: ${Math.round(rate)} delivered/s, sent ${steady.sent}, got ${steady.total}, p99 ${round(percentile(steady.latencies, 99))} ms`);

    let lat = { p50: NaN, p95: NaN, p99: NaN, sent: 0, total: 0 };
    if (o.latencySeconds > 0) {
      log(`latency phase: ${o.rate} messages/s offered for ${o.latencySeconds} s`);
      const l = await runPhase(pairs, "lat", { window: Infinity, durationMs: o.latencySeconds * 1000, ratePerSec: o.rate });
      lat = { p50: percentile(l.latencies, 50), p95: percentile(l.latencies, 95), p99: percentile(l.latencies, 99), sent: l.sent, total: l.total };
      log(`latency: p50 ${round(lat.p50)} ms, p95 ${round(lat.p95)} ms, p99 ${round(lat.p99)} ms`);
    }

    let offline = { stored_per_s: NaN, delivered_per_s: NaN, sent: 0, delivered: 0 };
    if (o.offline > 0) {
      log(`offline phase: ${o.offline} messages to logged-out receivers, then login`);
      await Promise.all(pairs.map((p) => p.receiver.call("out", "LOGOUT")));
      const per = Math.ceil(o.offline / pairs.length);
      const t0 = performance.now();
      await Promise.all(
        pairs.map(async (p) => {
          for (let k = 0; k < per; k += 32) {
            const batch = [];
            for (let j = k; j < Math.min(per, k + 32); j++) batch.push(p.sender.call(`o${j}`, `SEND ${p.r} offline ${j}`));
            await Promise.all(batch);
          }
        }),
      );
      const storeMs = performance.now() - t0;
      const expected = per * pairs.length;
      let got = 0;
      const seen = new Set<string>();
      const t1 = performance.now();
      let last = t1;
      for (const p of pairs)
        p.receiver.onLine = (l) => {
          if (l.startsWith("MSG ") && !seen.has(l.split(" ", 2)[1]!)) {
            seen.add(l.split(" ", 2)[1]!);
            got++;
            last = performance.now();
          }
        };
      // Tagged, so the reply's session key is taken and the proven PING validates the address
      // (a v2 server holds stored messages for an address until then).
      const logins = pairs.map((p) => p.receiver.call("back", `LOGIN ${p.r} benchpass`).catch((e: unknown) => log(`login ${p.r}: ${String(e)}`)));
      const until = performance.now() + 30_000;
      while (got < expected && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
      await Promise.all(logins);
      offline = { stored_per_s: expected / (storeMs / 1000), delivered_per_s: got / ((last - t1) / 1000), sent: expected, delivered: got };
      log(`offline: stored ${Math.round(offline.stored_per_s)}/s, delivered at login ${Math.round(offline.delivered_per_s)}/s (${got}/${expected})`);
    }

    // CPU per delivered message, summed by kind (gateway, router, bench = the load's clients).
    const perMsg = (kind: string) => {
      let ms = 0;
      for (const [name, v] of cpuSteady) if (name === kind || name.startsWith(`${kind}-`)) ms += v;
      return steady.total > 0 ? round((ms * 1000) / steady.total) : NaN;
    };
    const peakRss = Object.fromEntries([...procs].map(([name, pid]) => [name, pid === undefined ? null : (peakRssMb(pid) ?? null)]));
    const db = new pg.Client({ connectionString: u.toString() });
    await db.connect();
    const rows = Number((await db.query("SELECT count(*)::int AS n FROM messages")).rows[0].n);
    await db.end();
    const sentTotal = steady.sent + lat.sent + offline.sent;
    const gotTotal = steady.total + lat.total + offline.delivered;
    const result = {
      delivered_per_s: Math.round(rate),
      steady_p50_ms: round(percentile(steady.latencies, 50)),
      steady_p99_ms: round(percentile(steady.latencies, 99)),
      offered_per_s: o.rate,
      p50_ms: round(lat.p50),
      p95_ms: round(lat.p95),
      p99_ms: round(lat.p99),
      sent: sentTotal,
      received: gotTotal,
      stored_rows: rows,
      lost: sentTotal - gotTotal,
      offline_stored_per_s: Math.round(offline.stored_per_s),
      offline_delivered_per_s: Math.round(offline.delivered_per_s),
      pairs: o.pairs,
      window: o.window,
      seconds: o.seconds,
      gateways: o.gateways,
      shards: o.shards,
      routers: o.routers,
      proofs: o.proofs,
      client_ips: o.clientIps,
      cpu_us_per_msg: {
        gateway: perMsg("gateway"),
        router: perMsg("router"),
        clients: perMsg("bench"),
        // Summed over a Redis Cluster's masters (redis-1, redis-2, ...), like the gateways.
        ...Object.fromEntries([...new Set([...servers.keys()].filter((k) => cpuSteady.has(k)).map((k) => k.replace(/-\d+$/, "")))].map((k) => [k, perMsg(k)])),
      },
      peak_rss_mb: peakRss,
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    offSignals();
    await cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
