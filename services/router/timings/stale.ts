// Does a generic plan made on empty tables stay bad as they fill (no ANALYZE meanwhile, as in a
// fresh bench database)? Runs batchView + storeSends named on an empty database, fills it, times again.
import pg from "pg";
import { createHash, randomBytes } from "node:crypto";
import { migrate, PgDb } from "@pesan/shared/db";
import * as store from "../src/store.ts";
import type { Queryable } from "@pesan/shared/db";
const [url, mode = "named"] = process.argv.slice(2);
const admin = new pg.Client({ connectionString: url });
await admin.connect();
await admin.query("DROP DATABASE IF EXISTS planstale WITH (FORCE)");
await admin.query("CREATE DATABASE planstale");
const u = new URL(url!); u.pathname = "/planstale";
const pdb = new PgDb(u.toString()); await migrate(pdb);
await pdb.exec(`INSERT INTO users (name, pass_hash, home_cluster) SELECT 'u' || i, 'x', 'c1' FROM generate_series(0, 99) i;
INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard) SELECT 'u' || i, md5('t' || i), 'c1', 'gw-1', '127.0.0.1:' || (10000 + i), now(), now() FROM generate_series(0, 99) i;`);
await pdb.close();
const c = new pg.Client({ connectionString: u.toString() }); await c.connect();
if (mode === "named-custom") await c.query("SET plan_cache_mode = force_custom_plan");
const q = { query: async (sql: string | { name: string; text: string }, values?: unknown[]) => {
  const r = await c.query(typeof sql === "string" ? { text: sql, values } : mode === "plain" ? { text: sql.text, values } : { name: sql.name, text: sql.text, values });
  return { rows: r.rows, rowCount: r.rowCount ?? 0 }; }, exec: async () => undefined } as unknown as Queryable;
const now = new Date(), stale = new Date(now.getTime() - 60_000);
async function batch(n: number) {
  const s = Array.from({ length: n }, (_, i) => ({ s: i % 50, t: 50 + (i % 50), tag: randomBytes(4).toString("hex") }));
  await c.query("BEGIN");
  const t0 = performance.now();
  await store.batchView(q, { endpoints: [...new Set(s.map((x) => x.s))].map((x) => ({ gateway: "gw-1", addr: `127.0.0.1:${10000 + x}` })), targets: [...new Set(s.map((x) => `u${x.t}`))], boxLimit: 1000, tagged: s.map((x) => ({ gateway: "gw-1", addr: `127.0.0.1:${10000 + x.s}`, tag: x.tag })), staleBefore: stale });
  const t1 = performance.now();
  await store.storeSends(q, s.map((x) => ({ msg: { id: randomBytes(16).toString("hex"), sentAt: now, sender: `u${x.s}`, recipient: `u${x.t}`, body: "steady 1", delivered: true, pushAttempts: 1, nextPushAt: null }, dedup: { token: createHash("md5").update(`t${x.s}`).digest("hex"), tag: x.tag, reply: "OK SENT", entry: "1-0" } })), now, stale);
  const t2 = performance.now();
  await c.query("COMMIT");
  return [t1 - t0, t2 - t1];
}
const report = async (label: string) => {
  const r: number[][] = []; for (let i = 0; i < 50; i++) r.push(await batch(128));
  const med = (k: number) => r.map((x) => x[k]!).sort((a, b) => a - b)[25]!.toFixed(3);
  console.log(mode, label, "batchView", med(0), "storeSends", med(1));
};
await report("empty (first 50 batches)");
for (let k = 0; k < 6; k++) await report(`after ${(k + 1) * 50 * 128} rows`);
await c.end(); await admin.end();
