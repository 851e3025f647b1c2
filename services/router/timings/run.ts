// Per-statement timings of a batch's statements (batchView, storeSends) on the database
// setup.ts fills (plantimings): median client wall time per call over 300 batches per size,
// and pg_stat_statements' mean plan and execution time (the server needs
// shared_preload_libraries=pg_stat_statements, pg_stat_statements.track_planning=on, and the
// extension created in plantimings). Each call's batch is rolled back.
// usage: node timings/run.ts URL [MODE] [SIZE]
//   MODE: plain (every statement unnamed: parsed and planned each time) | named (every
//   statement prepared, Postgres's default plan choice) | named-custom | named-generic (a forced
//   plan_cache_mode) | explain:view|sends:N:SENDERS (EXPLAIN ANALYZE of one batch)
//   SIZE: n1 (1 SEND), w1 (20 SENDs from 20 senders), w64 (128 SENDs from 50 senders)
import pg from "pg";
import { createHash, randomBytes } from "node:crypto";
import * as store from "../src/store.ts";
import type { Queryable } from "@pesan/shared/db";

const [url, mode = "plain", filter = ""] = process.argv.slice(2);
const u = new URL(url!); u.pathname = "/plantimings";
const c = new pg.Client({ connectionString: u.toString() });
await c.connect();
const admin = new pg.Client({ connectionString: u.toString() });
await admin.connect();
if (mode === "named-custom") await c.query("SET plan_cache_mode = force_custom_plan");
if (mode === "named-generic") await c.query("SET plan_cache_mode = force_generic_plan");
const q: Queryable = {
  query: async (sql: string | { name: string; text: string }, params?: unknown[]) => {
    let cfg: pg.QueryConfig;
    if (typeof sql !== "string") cfg = mode === "plain" ? { text: sql.text, values: params } : { name: sql.name, text: sql.text, values: params };
    else cfg = mode === "plain" ? { text: sql, values: params } : { name: createHash("sha1").update(sql).digest("hex").slice(0, 16), text: sql, values: params };
    const r = await c.query(cfg);
    return { rows: r.rows, rowCount: r.rowCount ?? 0 };
  },
  exec: async (sql: string) => void (await c.query(sql)),
} as Queryable;

const now = new Date();
const stale = new Date(now.getTime() - 60_000);
function shape(n: number, senders: number) {
  const base = Math.floor(Math.random() * 1400);
  const sends = [];
  for (let i = 0; i < n; i++) {
    const s = base + (i % senders), t = 1500 + base + (i % senders);
    sends.push({ gateway: `gw-${s % 2}`, addr: `127.0.0.1:${10000 + s}`, token: createHash("md5").update(`t${s}`).digest("hex"), from: `u${s}`, to: `u${t}`, tag: randomBytes(4).toString("hex") });
  }
  return sends;
}
type S = ReturnType<typeof shape>;
async function view(s: S) {
  const eps = new Map(s.map((x) => [x.addr, { gateway: x.gateway, addr: x.addr }]));
  return store.batchView(q, { endpoints: [...eps.values()], targets: [...new Set(s.map((x) => x.to))], boxLimit: 1000, tagged: s.map((x) => ({ gateway: x.gateway, addr: x.addr, tag: x.tag })), staleBefore: stale });
}
async function sends(s: S) {
  return store.storeSends(q, s.map((x) => ({ msg: { id: randomBytes(16).toString("hex"), sentAt: now, sender: x.from, recipient: x.to, body: "steady 123.456", delivered: true, pushAttempts: 1, nextPushAt: null }, dedup: { token: x.token, tag: x.tag, reply: `OK SENT id`, entry: "1-0" } })), now, stale);
}
if (mode.startsWith("explain")) {
  const [, what, n, senders] = mode.split(":");
  const s = shape(Number(n), Number(senders));
  await c.query("BEGIN");
  const orig = q.query;
  for (let i = 0; i < 6; i++) { await view(s); await sends(s); }
  (q as { query: unknown }).query = async (sql: string | { name: string; text: string }, params?: unknown[]) => {
    const r = await c.query({ text: `EXPLAIN (ANALYZE, SUMMARY, COSTS OFF) ${typeof sql === "string" ? sql : sql.text}`, values: params });
    console.log(r.rows.map((x) => x["QUERY PLAN"]).join("\n"));
    return orig(sql, params);
  };
  // A batch of its own (fresh tags and ids), so the explained statement inserts as a real one does.
  const fresh = shape(Number(n), Number(senders));
  if (what === "view") await view(fresh); else await sends(fresh);
  await c.query("ROLLBACK");
  process.exit(0);
}
const shapes: Array<[string, number, number]> = [["n1", 1, 1], ["w1", 20, 20], ["w64", 128, 50]];
const N = 300;
const out: Record<string, unknown>[] = [];
for (const [label, n, senders] of shapes) {
  if (filter && !label.startsWith(filter)) continue;
  // Warm the plan cache with a mix of sizes (what a router sees), then measure this size.
  for (let i = 0; i < 30; i++) { const s = shape(shapes[i % 3]![1], shapes[i % 3]![2]); await c.query("BEGIN"); await view(s); await sends(s); await c.query("ROLLBACK"); }
  await admin.query("SELECT pg_stat_statements_reset()");
  const tv: number[] = [], ts: number[] = [];
  for (let i = 0; i < N; i++) {
    const s = shape(n, senders);
    await c.query("BEGIN");
    let t0 = performance.now(); await view(s); tv.push(performance.now() - t0);
    t0 = performance.now(); await sends(s); ts.push(performance.now() - t0);
    await c.query("ROLLBACK");
  }
  const st = await admin.query(`SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 30) AS q, calls, plans, total_plan_time / greatest(plans, 1) AS plan, total_plan_time / calls AS plan_per_call, total_exec_time / calls AS exec
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'plantimings') AND calls >= ${N} AND query NOT IN ('BEGIN', 'ROLLBACK') ORDER BY query`);
  const med = (a: number[]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]!.toFixed(3);
  for (const r of st.rows) {
    const isView = r.q.startsWith("SELECT");
    out.push({ mode, shape: label, stmt: isView ? "batchView" : "storeSends", wall_med_ms: isView ? med(tv) : med(ts), plans: r.plans, plan_ms: Number(r.plan_per_call).toFixed(3), exec_ms: Number(r.exec).toFixed(3) });
  }
}
console.table(out);
await c.end(); await admin.end();
