/**
 * `pnpm bench --mode soak`: a long steady load through a process cluster with a router killed
 * (SIGKILL) every few minutes and started again, to show what a long run costs: every
 * process's RSS, every table's and stream's size, at the start, every minute and at the end,
 * and the count of what was accepted, received, lost and duplicated. Not a test: a bench mode
 * whose JSON line goes into the closing note and the README.
 *
 * Every SEND is retried with its tag until it is answered (the server's exactly-once rule), so
 * a message is lost only if an accepted one (OK SENT) never reached its receiver, and
 * duplicated if its receiver got two messages with the same text (texts are unique).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { numberOption, parseCli } from "./args.ts";
import { Peer } from "./bench-client.ts";
import { startCluster, type Cluster } from "./cluster.ts";
import { cleanupOnSignals, once } from "./interrupt.ts";
import { peakRssMb } from "./proc-stats.ts";
import { dropKeys, scanKeys } from "./redis-keys.ts";
import { readFileSync } from "node:fs";

const HELP = `usage: pnpm bench --mode soak [--minutes 30] [--kill-every-minutes 5] [--rate 500] [--pairs 20]
                  [--gateways 1] [--routers 2] [--logs DIR]

Steady load of --rate messages/s (in all) for --minutes, with a router killed (SIGKILL) every
--kill-every-minutes and started again 1 s later. Progress every minute on stderr; the result
(one JSON line: counts, RSS of every process, size of every table and Redis stream at start
and end) on stdout. Needs DATABASE_URL and REDIS_URL like pnpm bench.
`;

function log(msg: string): void {
  process.stderr.write(`[soak] ${msg}\n`);
}

/** Current resident set in MiB (VmRSS), or null when the process is gone. */
function rssMb(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

interface Sizes {
  at: string;
  rss_mb: Record<string, number | null>;
  tables: Record<string, { rows: number; mb: number }>;
  streams: Record<string, number>;
  redis_used_mb: number;
}

async function sizes(cluster: Cluster, db: pg.Client, redisUrl: string, prefix: string): Promise<Sizes> {
  const rss: Record<string, number | null> = { soak: rssMb(process.pid) };
  cluster.gateways.forEach((g, i) => (rss[`gateway-${i + 1}`] = rssMb(g.proc?.pid)));
  cluster.routers.forEach((r, i) => (rss[`router-${i + 1}`] = rssMb(r.proc?.pid)));
  const t = await db.query<{ name: string; rows: string; bytes: string }>(
    `SELECT c.relname AS name, c.reltuples::bigint::text AS rows, pg_total_relation_size(c.oid)::text AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY c.relname`,
  );
  // reltuples is an estimate; the tables that grow get an exact count.
  const tables: Record<string, { rows: number; mb: number }> = {};
  for (const r of t.rows) {
    const exact = ["messages", "connection_log", "send_dedup", "peer_outbox", "sessions", "users"].includes(r.name);
    const rows = exact ? Number((await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${pg.escapeIdentifier(r.name)}`)).rows[0]!.n) : Math.max(0, Number(r.rows));
    tables[r.name] = { rows, mb: Math.round((Number(r.bytes) / 1024 / 1024) * 10) / 10 };
  }
  const { Redis } = await import("ioredis");
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  const streams: Record<string, number> = {};
  let used = 0;
  try {
    await redis.connect();
    for await (const keys of scanKeys(redis, prefix)) for (const k of keys) if ((await redis.type(k)) === "stream") streams[k.slice(prefix.length)] = await redis.xlen(k);
    used = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1] ?? 0);
  } finally {
    redis.disconnect();
  }
  return { at: new Date().toISOString(), rss_mb: rss, tables, streams, redis_used_mb: Math.round(used / 1024 / 1024) };
}

export async function main(argv: string[]): Promise<void> {
  process.argv = [process.argv[0]!, process.argv[1]!, ...argv];
  const values = parseCli(
    {
      minutes: { type: "string", default: "30" },
      "kill-every-minutes": { type: "string", default: "5" },
      rate: { type: "string", default: "500" },
      pairs: { type: "string", default: "20" },
      gateways: { type: "string", default: "1" },
      routers: { type: "string", default: "2" },
      logs: { type: "string" },
    },
    HELP,
  );
  if (!values) return;
  const minutes = numberOption("minutes", values.minutes, 0.1, false);
  const killEvery = numberOption("kill-every-minutes", values["kill-every-minutes"], 0.1, false);
  const rate = numberOption("rate", values.rate, 1, false);
  const nPairs = numberOption("pairs", values.pairs, 1);
  const routers = numberOption("routers", values.routers, 2);
  const gateways = numberOption("gateways", values.gateways, 1);

  const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const dbName = `pesan_soak_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  const prefix = `pesansoak:${randomBytes(3).toString("hex")}:`;
  let cluster: Cluster | undefined;
  // A signal during the start must stop what it started too: the clean-up waits for it.
  let starting: Promise<Cluster> | undefined;
  const peers: Peer[] = [];
  const db = new pg.Client({ connectionString: u.toString() });
  const cleanup = once(async () => {
    for (const p of peers) p.close();
    await (cluster ?? (await starting?.catch(() => undefined)))?.stop();
    await db.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await dropKeys(redisUrl, prefix);
  });
  const offSignals = cleanupOnSignals(cleanup, log);
  try {
    log(`starting ${gateways} gateway(s) and ${routers} routers, database ${dbName}`);
    starting = startCluster({ databaseUrl: u.toString(), redisUrl, gateways, routers, busPrefix: prefix, logDir: values.logs, env: { LOG_LEVEL: "warn", PASSWORD_HASH_COST: "10" } });
    cluster = await starting;
    await db.connect();
    const addrs = cluster.addresses;
    const run = randomBytes(2).toString("hex");
    const pairs = Array.from({ length: nPairs }, (_, i) => ({ sender: new Peer(addrs[i % addrs.length]!, true), receiver: new Peer(addrs[(i + 1) % addrs.length]!, true), s: `s${run}_${i}`, r: `r${run}_${i}` }));
    for (const p of pairs) {
      await p.sender.open();
      await p.receiver.open();
      peers.push(p.sender, p.receiver);
      await p.sender.call("reg", `REGISTER ${p.s} soakpass1`);
      await p.sender.call("in", `LOGIN ${p.s} soakpass1`);
      await p.receiver.call("reg", `REGISTER ${p.r} soakpass1`);
      await p.receiver.call("in", `LOGIN ${p.r} soakpass1`);
    }
    // Heartbeats keep the leases (3 min) alive for the whole run.
    const hb = setInterval(() => {
      for (const p of peers) p.send("PING");
    }, 30_000);

    let accepted = 0;
    let refused = 0;
    let received = 0;
    let duplicates = 0;
    const got = new Map<string, string>(); // text -> id
    for (const p of pairs)
      p.receiver.onLine = (l) => {
        if (!l.startsWith("MSG ")) return;
        const parts = l.split(" ");
        const id = parts[1]!;
        const text = parts.slice(4).join(" ");
        const seen = got.get(text);
        if (seen === undefined) {
          got.set(text, id);
          received++;
        } else if (seen !== id) duplicates++;
      };
    const acceptedTexts = new Set<string>();
    let seq = 0;
    let inFlight = 0;
    const sendOne = (i: number): void => {
      const p = pairs[i]!;
      const text = `soak ${seq++}`;
      inFlight++;
      p.sender
        .call(`k${seq.toString(36)}`, `SEND ${p.r} ${text}`, 3000, 20)
        .then((reply) => {
          if (reply.startsWith("OK SENT")) {
            accepted++;
            acceptedTexts.add(text);
          } else refused++;
        })
        .catch(() => refused++)
        .finally(() => inFlight--);
    };

    const start = await sizes(cluster, db, redisUrl, prefix);
    log(`start: ${JSON.stringify(start.rss_mb)}`);
    const t0 = Date.now();
    const endAt = t0 + minutes * 60_000;
    let credit = 0;
    let turn = 0;
    const pace = setInterval(() => {
      if (Date.now() >= endAt) return;
      credit += (rate * 10) / 1000;
      // Bounded: a cluster that stops answering must not pile up requests in the generator.
      while (credit >= 1 && inFlight < nPairs * 64) {
        credit -= 1;
        sendOne(turn++ % nPairs);
      }
      if (credit > rate) credit = rate;
    }, 10);
    const kills: Array<{ at_s: number; router: string; back_ms: number }> = [];
    let nextKill = t0 + killEvery * 60_000;
    let nextReport = t0 + 60_000;
    let victim = 0;
    while (Date.now() < endAt) {
      await new Promise((r) => setTimeout(r, 1000));
      if (Date.now() >= nextKill && Date.now() < endAt) {
        nextKill += killEvery * 60_000;
        const r = cluster.routers[victim % cluster.routers.length]!;
        const name = `router-${(victim % cluster.routers.length) + 1}`;
        victim++;
        const k0 = Date.now();
        await r.kill9();
        await new Promise((res) => setTimeout(res, 1000));
        await r.restart();
        kills.push({ at_s: Math.round((k0 - t0) / 1000), router: name, back_ms: Date.now() - k0 });
        log(`killed ${name} (SIGKILL) and started it again in ${Date.now() - k0} ms`);
      }
      if (Date.now() >= nextReport) {
        nextReport += 60_000;
        const s = await sizes(cluster, db, redisUrl, prefix);
        log(`${Math.round((Date.now() - t0) / 60_000)} min: accepted ${accepted}, received ${received}, dup ${duplicates}, in flight ${inFlight}; rss ${JSON.stringify(s.rss_mb)}; messages ${s.tables.messages?.rows}; redis ${s.redis_used_mb} MB`);
      }
    }
    clearInterval(pace);
    // Drain: answers and pushes still on their way.
    const drainUntil = Date.now() + 60_000;
    while (Date.now() < drainUntil && (inFlight > 0 || [...acceptedTexts].some((t) => !got.has(t)))) await new Promise((r) => setTimeout(r, 500));
    clearInterval(hb);
    const lost = [...acceptedTexts].filter((t) => !got.has(t)).length;
    const end = await sizes(cluster, db, redisUrl, prefix);
    const peak: Record<string, number | null> = {};
    cluster.gateways.forEach((g, i) => (peak[`gateway-${i + 1}`] = g.proc?.pid === undefined ? null : (peakRssMb(g.proc.pid) ?? null)));
    cluster.routers.forEach((r, i) => (peak[`router-${i + 1}`] = r.proc?.pid === undefined ? null : (peakRssMb(r.proc.pid) ?? null)));
    const result = {
      mode: "soak",
      minutes,
      rate,
      sent: seq,
      accepted,
      refused,
      received,
      lost,
      duplicates,
      kills,
      start,
      end,
      peak_rss_mb_since_last_start: peak,
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    offSignals();
    await cleanup();
  }
}
