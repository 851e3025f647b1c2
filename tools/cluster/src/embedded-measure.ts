#!/usr/bin/env node
/**
 * The embedded mode's memory and throughput, measured on the real process (`pnpm start`):
 * `node tools/cluster/src/embedded-measure.ts --help`. Each run starts it on a fresh DATA_DIR
 * (initdb included, as a newcomer's first `./pesan start`), registers and logs in a few users
 * who send each other a few messages, waits until idle and reads VmRSS and VmHWM from
 * /proc/<pid>/status, then runs a SEND/receive load and restarts it on the same DATA_DIR (a
 * second start, as every later `./pesan start`). Settings of the embedded mode (PGLITE_*,
 * MONITOR, ...) come from this command's environment, so before/after runs differ only there.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Peer, resendUnanswered, type InFlight } from "./bench-client.ts";
import { embeddedEnv, freePorts, NODE_FLAGS, ServiceProcess } from "./cluster.ts";
import { numberOption, parseCli } from "./args.ts";

const HELP = `usage: node tools/cluster/src/embedded-measure.ts [--runs 3] [--idle-seconds 30] [--load-seconds 10] [--pairs 10] [--window 8] [--offline 2000]
                  [--node-flags "--liftoff-only"]

Starts the embedded mode (apps/embedded, PGlite and the in-process bus, the monitor on) as a
process, --runs times, each on a fresh data directory. Per run it prints one JSON line:
  first_start_peak_mib   VmHWM once the first start (initdb included) answers /healthz
  idle_rss_mib           VmRSS --idle-seconds after a few users registered, logged in and sent
  idle_hwm_mib           VmHWM at that moment (the peak so far)
  idle_js_heap_mib       the JS heap (nodejs_heap_size_total_bytes from /metrics) at that moment
  first_start_s          seconds from spawn to /healthz answering, first start
  load_msgs_per_s        messages delivered per second: --pairs senders, each --window SENDs in
                         flight, for --load-seconds, counted at the receivers
  offline_stored_per_s   the receivers logged out, --offline messages (in all) sent to them,
                         32 in flight per sender: stored per second
  offline_login_per_s    then the receivers log in: those messages received per second
  after_load_rss_mib     VmRSS right after the load
  restart_peak_mib       VmHWM 5 s after a restart on the same data directory answers /healthz
  restart_idle_rss_mib   VmRSS at that moment
  restart_s              seconds from spawn to /healthz answering, restart
and at the end one line with every run's figures side by side.
The embedded mode's settings (e.g. PGLITE_SHARED_BUFFERS) come from this command's environment.
--node-flags: what node runs it with (default: as \`pnpm start\` does, ${NODE_FLAGS.embedded.join(" ")});
"" for none, to measure V8's optimizing compiler at work on PGlite's WASM.
DATABASE_URL and REDIS_URL are cleared for it, so it always runs on PGlite.
`;

const MIB = 1024 * 1024;

function status(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, "m").exec(s)?.[1] ?? NaN);
  return { rss: Math.round(kb("VmRSS") / 1024), hwm: Math.round(kb("VmHWM") / 1024) };
}

async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Math.round(Number(m[1]) / MIB) : NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pair {
  sender: Peer;
  receiver: Peer;
  s: string;
  r: string;
}

/** --pairs senders, each keeping --window SENDs in flight; MSG ids counted once at the receivers. */
async function load(pairs: Pair[], window: number, durationMs: number): Promise<number> {
  const seen = new Set<string>();
  const inflight = pairs.map(() => new Map<string, InFlight>());
  const stopAt = performance.now() + durationMs;
  let seq = 0;
  const sendOne = (i: number) => {
    const tag = `l${(seq++).toString(36)}`;
    const line = `SEND ${pairs[i]!.r} load ${seq}`;
    inflight[i]!.set(tag, { line, at: performance.now() });
    pairs[i]!.sender.send(`@${tag} ${line}`);
  };
  const pump = (i: number) => {
    while (performance.now() < stopAt && inflight[i]!.size < window) sendOne(i);
  };
  pairs.forEach((p, i) => {
    p.sender.onLine = (l) => {
      const sp = l.indexOf(" ");
      if (l.startsWith("ERR UNAVAILABLE", sp + 1)) return; // retried below under the same tag
      if (inflight[i]!.delete(l.slice(1, sp))) pump(i);
    };
    p.receiver.onLine = (l) => {
      if (l.startsWith("MSG ")) seen.add(l.split(" ", 2)[1]!);
    };
  });
  const retry = resendUnanswered(pairs.map((p) => p.sender), inflight);
  const started = performance.now();
  pairs.forEach((_, i) => pump(i));
  await sleep(durationMs);
  const delivered = seen.size;
  const elapsed = performance.now() - started;
  // Let what is in flight land before the next phase reads memory.
  const drainUntil = performance.now() + 10_000;
  while (performance.now() < drainUntil && inflight.some((m) => m.size > 0)) await sleep(100);
  clearInterval(retry);
  return Math.round((delivered * 1000) / elapsed);
}

/** Receivers away, `total` messages stored for them, then delivered when they log in. */
async function offline(pairs: Pair[], total: number): Promise<{ stored: number; delivered: number }> {
  for (const p of pairs) p.receiver.onLine = () => undefined;
  await Promise.all(pairs.map((p) => p.receiver.call("out", "LOGOUT")));
  const per = Math.ceil(total / pairs.length);
  const t0 = performance.now();
  await Promise.all(
    pairs.map(async (p) => {
      for (let k = 0; k < per; k += 32) {
        const batch: Array<Promise<string>> = [];
        for (let j = k; j < Math.min(per, k + 32); j++) batch.push(p.sender.call(`o${j}`, `SEND ${p.r} offline ${j}`));
        for (const reply of await Promise.all(batch)) if (!/ STORED$/.test(reply)) throw new Error(`offline SEND: ${reply}`);
      }
    }),
  );
  const stored = Math.round((per * pairs.length * 1000) / (performance.now() - t0));
  const seen = new Set<string>();
  for (const p of pairs)
    p.receiver.onLine = (l) => {
      if (l.startsWith("MSG ") && l.includes(" offline ")) seen.add(l.split(" ", 2)[1]!);
    };
  const t1 = performance.now();
  await Promise.all(pairs.map((p) => p.receiver.call("back", `LOGIN ${p.r} measurepass`)));
  const deadline = performance.now() + 60_000;
  while (seen.size < per * pairs.length && performance.now() < deadline) await sleep(20);
  if (seen.size < per * pairs.length) throw new Error(`offline: ${seen.size} of ${per * pairs.length} received at login`);
  return { stored, delivered: Math.round((seen.size * 1000) / (performance.now() - t1)) };
}

async function oneRun(run: number, o: { idleMs: number; loadMs: number; pairs: number; window: number; offline: number; nodeFlags: string[] }): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), "pesan-embedded-measure-"));
  const [udp, http, monitorPort] = await freePorts(3);
  const env = embeddedEnv({ dataDir: dir, udpPort: udp!, httpPort: http!, monitorPort: monitorPort! });
  const proc = new ServiceProcess("embedded", `embedded-${run}`, env, http!, udp, join(dir, "embedded.log"));
  proc.nodeFlags = o.nodeFlags;
  const address = `127.0.0.1:${udp}`;
  const pairs: Pair[] = [];
  try {
    const spawned = performance.now();
    proc.start();
    await proc.waitReady(180_000);
    const pid = proc.proc!.pid!;
    const out: Record<string, number> = { first_start_peak_mib: status(pid).hwm, first_start_s: Math.round((performance.now() - spawned) / 100) / 10 };
    for (let i = 0; i < o.pairs; i++) {
      const p: Pair = { sender: new Peer(address, true), receiver: new Peer(address, true), s: `ms${i}`, r: `mr${i}` };
      pairs.push(p);
      await Promise.all([p.sender.open(), p.receiver.open()]);
      await p.sender.call("reg", `REGISTER ${p.s} measurepass`);
      await p.receiver.call("reg", `REGISTER ${p.r} measurepass`);
      await p.sender.call("in", `LOGIN ${p.s} measurepass`);
      await p.receiver.call("in", `LOGIN ${p.r} measurepass`);
      for (let j = 0; j < 5; j++) await p.sender.call(`w${j}`, `SEND ${p.r} warm-up ${j}`);
    }
    await sleep(o.idleMs);
    const idle = status(pid);
    out.idle_rss_mib = idle.rss;
    out.idle_hwm_mib = idle.hwm;
    out.idle_js_heap_mib = await metric(http!, "nodejs_heap_size_total_bytes");
    out.load_msgs_per_s = await load(pairs, o.window, o.loadMs);
    out.after_load_rss_mib = status(pid).rss;
    if (o.offline > 0) {
      const off = await offline(pairs, o.offline);
      out.offline_stored_per_s = off.stored;
      out.offline_login_per_s = off.delivered;
    }
    for (const p of pairs) {
      p.sender.close();
      p.receiver.close();
    }
    pairs.length = 0;
    await proc.stop();
    const restarted = performance.now();
    await proc.restart(180_000);
    out.restart_s = Math.round((performance.now() - restarted) / 100) / 10;
    await sleep(5000);
    const again = status(proc.proc!.pid!);
    out.restart_peak_mib = again.hwm;
    out.restart_idle_rss_mib = again.rss;
    return out;
  } finally {
    for (const p of pairs) {
      p.sender.close();
      p.receiver.close();
    }
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const v = parseCli(
    {
      runs: { type: "string", default: "3" },
      "idle-seconds": { type: "string", default: "30" },
      "load-seconds": { type: "string", default: "10" },
      pairs: { type: "string", default: "10" },
      window: { type: "string", default: "8" },
      offline: { type: "string", default: "2000" },
      "node-flags": { type: "string", default: NODE_FLAGS.embedded.join(" ") },
    },
    HELP,
  );
  if (!v) return;
  const runs = numberOption("runs", v.runs, 1);
  const o = {
    idleMs: numberOption("idle-seconds", v["idle-seconds"], 0) * 1000,
    loadMs: numberOption("load-seconds", v["load-seconds"], 1) * 1000,
    pairs: numberOption("pairs", v.pairs, 1),
    window: numberOption("window", v.window, 1),
    offline: numberOption("offline", v.offline, 0),
    nodeFlags: v["node-flags"].split(" ").filter((f) => f !== ""),
  };
  const results: Array<Record<string, number>> = [];
  for (let run = 1; run <= runs; run++) {
    const r = await oneRun(run, o);
    results.push(r);
    process.stdout.write(`${JSON.stringify({ run, ...r })}\n`);
  }
  const keys = Object.keys(results[0]!);
  process.stdout.write(`${JSON.stringify({ settings: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("PGLITE_"))), node_flags: o.nodeFlags.join(" "), ...Object.fromEntries(keys.map((k) => [k, results.map((r) => r[k]).join(" / ")])) })}\n`);
}

await main();
