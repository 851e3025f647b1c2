/**
 * `pnpm bench --mode cross|failover`: two linked clusters (a, b) started as processes by the
 * bench itself, each with its own database, key prefix, gateway, router and peer-sync.
 *   cross     senders on a, receivers on b: delivered messages/s across the link, and the
 *             replication lag a reports for b (sampled from its /healthz every 200 ms)
 *   failover  one library client (PesanClient, servers = [a, b]) sends 50 messages/s; every
 *             process of a is killed: gap_ms between the last reply before and the first
 *             after, and how many answered messages never reached the receiver (on b)
 * One JSON line on stdout, progress on stderr.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { PesanClient, RequestTimeoutError, Transport } from "@pesan/client";
import { numberOption, parseCli } from "./args.ts";
import { freePorts, ServiceProcess, startCluster, type Cluster } from "./cluster.ts";
import { dropKeys } from "./redis-keys.ts";
import { cleanupOnSignals, once } from "./interrupt.ts";

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Each mode's options and their defaults (numbers >= 0). */
const MODE_OPTIONS = {
  cross: { pairs: "20", window: "32", seconds: "10" },
  failover: { rate: "50", seconds: "3", "after-seconds": "4" },
} as const;

type Num = (name: string) => number;

function usage(mode: keyof typeof MODE_OPTIONS): string {
  const opts = Object.entries(MODE_OPTIONS[mode]).map(([k, v]) => `[--${k} ${v}]`);
  return `usage: pnpm bench --mode ${mode} ${opts.join(" ")} [--help] [--version]\n\nTwo linked clusters (a, b) as processes; one JSON line on stdout, progress on stderr.\nNeeds Postgres and Redis (DATABASE_URL, REDIS_URL; see pnpm bench --help).\n`;
}

interface Linked {
  a: { cluster: Cluster; peerSync: ServiceProcess; address: string; health: number };
  b: { cluster: Cluster; peerSync: ServiceProcess; address: string; health: number };
  stop(): Promise<void>;
}

async function startLinked(): Promise<Linked> {
  const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const run = randomBytes(4).toString("hex");
  const names = ["a", "b"] as const;
  const dbs = names.map((n) => `pesan_bench_${n}_${run}`);
  for (const d of dbs) await admin.query(`CREATE DATABASE ${d}`);
  const url = (d: string) => {
    const u = new URL(adminUrl);
    u.pathname = `/${d}`;
    return u.toString();
  };
  const clusters: Cluster[] = [];
  const syncs: ServiceProcess[] = [];
  const stop = once(async () => {
    await Promise.all([...syncs.map((s) => s.stop()), ...clusters.map((c) => c.stop())]);
    for (const d of dbs) await admin.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await dropKeys(redisUrl, `pesanbench:${run}`).catch(() => undefined);
  });
  // Until the process exits: after stop() has run, a signal only exits.
  cleanupOnSignals(stop, (line) => process.stderr.write(`[bench] ${line}\n`));
  try {
    for (const [i, n] of names.entries()) {
      clusters.push(
        await startCluster({ databaseUrl: url(dbs[i]!), redisUrl, gateways: 1, routers: 1, busPrefix: `pesanbench:${run}${n}:`, env: { LOG_LEVEL: "warn", SERVER_NAME: n } }),
      );
    }
    const ports = await freePorts(4);
    const key = randomBytes(32).toString("hex");
    for (const [i, n] of names.entries()) {
      const j = 1 - i;
      const env = {
        DATABASE_URL: url(dbs[i]!),
        SERVER_NAME: n,
        PUBLIC_ADDRESS: clusters[i]!.addresses[0]!,
        SYNC_LISTEN: `127.0.0.1:${ports[i]}`,
        SYNC_URL: `http://127.0.0.1:${ports[i]}`,
        PEERS: `${names[j]}=http://127.0.0.1:${ports[j]}=${clusters[j]!.addresses[0]}=${key}`,
        LIVENESS_INTERVAL_MS: "200",
        LIVENESS_TIMEOUT_MS: "500",
        OUTBOX_POLL_MS: "50",
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(ports[2 + i]),
        LOG_LEVEL: "warn",
      };
      const s = new ServiceProcess("peer-sync", `peer-sync-${n}`, env, ports[2 + i]!, undefined, undefined);
      syncs.push(s);
      s.start();
    }
    await Promise.all(syncs.map((s) => s.waitReady(30_000)));
    // Both links UP before anything is measured.
    for (let t = 0; ; t++) {
      const h = (await (await fetch(`http://127.0.0.1:${ports[2]}/healthz`)).json()) as { links: Record<string, { state: string }> };
      const h2 = (await (await fetch(`http://127.0.0.1:${ports[3]}/healthz`)).json()) as { links: Record<string, { state: string }> };
      if (h.links.b?.state === "UP" && h2.links.a?.state === "UP") break;
      if (t > 100) throw new Error("the link between a and b did not come UP");
      await sleep(100);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const side = (i: number) => ({ cluster: clusters[i]!, peerSync: syncs[i]!, address: clusters[i]!.addresses[0]!, health: Number(syncs[i]!.httpPort) });
  return { a: side(0), b: side(1), stop };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A bench client on the client core's Transport: tagged requests, untagged MSG pushes counted,
 * every line that answers no request to onLine; signs once a LOGIN reply gave it a key.
 */
class Raw {
  private readonly t: Transport;
  msgs = 0;
  onLine: (line: string) => void = () => undefined;
  constructor(address: string) {
    this.t = new Transport({
      target: address,
      bindHost: "127.0.0.1",
      recvBufferSize: 4 << 20,
      sendBufferSize: 4 << 20,
      autoProof: true,
      onDatagram: (d) => {
        if (d.text.startsWith("MSG ")) this.msgs++;
        if (!d.answers) this.onLine(d.text);
      },
    });
  }
  open(): Promise<void> {
    return this.t.start();
  }
  /** The final reply (tag removed), or undefined after timeoutMs. */
  async request(line: string, tag: string, timeoutMs = 2000): Promise<string | undefined> {
    try {
      const lines = await this.t.request(line, { tag, timeoutMs });
      return lines[lines.length - 1]!.raw.slice(tag.length + 2);
    } catch (err) {
      if (err instanceof RequestTimeoutError) return undefined;
      throw err;
    }
  }
  close(): void {
    void this.t.close(); // never rejects
  }
}

async function account(at: string, user: string, login: boolean): Promise<Raw> {
  const c = new Raw(at);
  await c.open();
  const r = await c.request(`REGISTER ${user} secret1`, "r", 10_000);
  if (!r?.startsWith("OK")) throw new Error(`REGISTER ${user}: ${r}`);
  if (login) {
    const l = await c.request(`LOGIN ${user} secret1`, "l", 10_000);
    if (!l?.startsWith("OK LOGIN")) throw new Error(`LOGIN ${user}: ${l}`);
  }
  return c;
}

async function lagSampler(port: number, peer: string): Promise<{ stop(): Promise<number[]> }> {
  const samples: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const h = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { links: Record<string, { lagSeconds?: number }> };
        samples.push(h.links[peer]?.lagSeconds ?? 0);
      } catch {
        // a sample lost
      }
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

/** Mean frames per request that peer-sync at `port` sent to `peer` (from its /metrics). */
async function meanBatch(port: number, peer: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name}\\{[^}]*peer="${peer}"[^}]*\\} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  const sum = read("pesan_peer_batch_frames_sum");
  const count = read("pesan_peer_batch_frames_count");
  return count > 0 ? Math.round((sum / count) * 10) / 10 : null;
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function cross(arg: Num, l: Linked): Promise<Record<string, unknown>> {
  const pairs = arg("pairs");
  const window = arg("window");
  const seconds = arg("seconds");
  const run = randomBytes(2).toString("hex");
  const senders: Raw[] = [];
  const receivers: Raw[] = [];
  for (let i = 0; i < pairs; i++) {
    senders.push(await account(l.a.address, `s${run}${i}`, true));
    receivers.push(await account(l.b.address, `r${run}${i}`, true));
  }
  // Until a knows every receiver is online on b (session.up replicated).
  const probe = senders[0]!;
  for (let t = 0; t < 100; t++) {
    const r = await probe.request(`SEND r${run}${pairs - 1} warmup`, `w${t}`);
    if (r?.endsWith("DELIVERED")) break;
    await sleep(100);
  }
  await sleep(500);
  for (const r of receivers) r.msgs = 0;
  log(`cross: ${pairs} pairs, window ${window}, ${seconds} s`);
  const sampler = await lagSampler(l.a.health, "b");
  const until = Date.now() + seconds * 1000;
  let sent = 0;
  let unanswered = 0;
  await Promise.all(
    senders.map(async (s, i) => {
      let n = 0;
      await Promise.all(
        Array.from({ length: window }, async (_, w) => {
          while (Date.now() < until) {
            const tag = `t${w}x${n++}`;
            const r = await s.request(`SEND r${run}${i} x`, tag, 3000);
            if (r?.startsWith("OK SENT")) sent++;
            else unanswered++;
          }
        }),
      );
    }),
  );
  const got1 = receivers.reduce((a, r) => a + r.msgs, 0);
  // Let replication drain (up to 90 s), then count what arrived.
  const drainFrom = Date.now();
  for (let t = 0; t < 450; t++) {
    if (receivers.reduce((a, r) => a + r.msgs, 0) >= sent) break;
    await sleep(200);
  }
  const drainMs = Date.now() - drainFrom;
  const lag = await sampler.stop();
  const delivered = receivers.reduce((a, r) => a + r.msgs, 0);
  const [batchAB, batchBA] = await Promise.all([meanBatch(l.a.health, "b"), meanBatch(l.b.health, "a")]);
  for (const c of [...senders, ...receivers]) c.close();
  return {
    mode: "cross",
    pairs,
    window,
    seconds,
    sent,
    unanswered,
    delivered,
    delivered_in_window: got1,
    delivered_per_s: Math.round(got1 / seconds),
    drain_ms: drainMs,
    lost: Math.max(0, sent - delivered),
    replication_lag_p99_s: pct(lag, 99),
    replication_lag_max_s: Math.max(0, ...lag),
    mean_batch_frames_a_to_b: batchAB,
    mean_batch_frames_b_to_a: batchBA,
  };
}

async function failover(arg: Num, l: Linked): Promise<Record<string, unknown>> {
  const rate = arg("rate");
  const before = arg("seconds");
  const after = arg("after-seconds");
  const run = randomBytes(2).toString("hex");
  (await account(l.a.address, `fs${run}`, false)).close();
  const receiver = await account(l.b.address, `fr${run}`, true);
  await sleep(1000); // both accounts and the session everywhere
  const c = new PesanClient({ servers: [l.a.address, l.b.address], heartbeatMs: 100, missedHeartbeats: 3, capAck: true, requestTimeoutMs: 300 });
  c.on("error", () => undefined);
  await c.start();
  await c.login(`fs${run}`, "secret1");
  const got = new Set<string>();
  receiver.onLine = (l) => {
    const m = /^MSG \S+ \S+ \S+ (.*)$/.exec(l);
    if (m) got.add(m[1]!);
  };
  const answered: Array<{ body: string; at: number; onB: boolean }> = [];
  let unanswered = 0;
  let killedAt = 0;
  let i = 0;
  const stopAt = { t: Infinity };
  const tick = 1000 / rate;
  const loop = (async () => {
    while (Date.now() < stopAt.t) {
      const body = `m${i++}`;
      const t0 = Date.now();
      void c
        .send(`fr${run}`, body)
        .then(() => answered.push({ body, at: Date.now(), onB: c.currentServer === l.b.address }))
        .catch(() => unanswered++);
      await sleep(Math.max(0, tick - (Date.now() - t0)));
    }
  })();
  await sleep(before * 1000);
  log("failover: killing every process of a");
  killedAt = Date.now();
  await Promise.all([l.a.peerSync.kill9(), ...l.a.cluster.routers.map((p) => p.kill9()), ...l.a.cluster.gateways.map((p) => p.kill9())]);
  await sleep(after * 1000);
  stopAt.t = Date.now();
  await loop;
  await sleep(1500);
  // The last answer from a, and the first from b (after the client failed over).
  const lastBefore = Math.max(0, ...answered.filter((x) => !x.onB).map((x) => x.at));
  const firstAfter = Math.min(...answered.filter((x) => x.onB).map((x) => x.at));
  const lost = answered.filter((x) => !got.has(x.body)).length;
  // a comes back: what it answered but had not sent on before the kill is in its outbox.
  if (lost > 0) {
    await Promise.all([...l.a.cluster.routers.map((p) => p.restart()), ...l.a.cluster.gateways.map((p) => p.restart()), l.a.peerSync.restart()]);
    for (let t = 0; t < 50 && answered.some((x) => !got.has(x.body)); t++) await sleep(200);
  }
  const lostAfterRestart = answered.filter((x) => !got.has(x.body)).length;
  await c.close();
  receiver.close();
  return {
    mode: "failover",
    rate,
    sent: i,
    answered: answered.length,
    unanswered,
    gap_ms: Number.isFinite(firstAfter) ? firstAfter - lastBefore : null,
    last_answer_after_kill_ms: lastBefore - killedAt,
    lost,
    lost_after_a_restarted: lostAfterRestart,
    note: "lost counts answered SENDs whose message never reached the receiver; before a is restarted: a message a answered but had not yet sent on counts until then",
  };
}

export async function main(mode: string, argv: string[]): Promise<void> {
  if (mode !== "cross" && mode !== "failover") throw new Error(`--mode: single, cross, failover or soak (got ${mode})`);
  const options = Object.fromEntries(Object.entries(MODE_OPTIONS[mode]).map(([k, v]) => [k, { type: "string" as const, default: v as string }]));
  const values = parseCli(options, usage(mode), argv) as Record<string, string> | undefined;
  if (!values) return;
  const arg: Num = (name) => numberOption(name, values[name]!, 0, false);
  log(`starting two linked clusters (a, b) for --mode ${mode}`);
  const l = await startLinked();
  try {
    const result = mode === "cross" ? await cross(arg, l) : await failover(arg, l);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await l.stop();
  }
}
