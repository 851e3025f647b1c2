/**
 * PgDb against the real Postgres (DATABASE_URL's server): a statement past the query timeout,
 * and a connection on a server that went read-only, fail as transient errors (the callers'
 * retry takes them), and the connection that got them is discarded, not handed out again.
 * One pooled connection each, so "a new connection" is visible as a new backend pid.
 */
import { PgDb } from "./db.ts";
import { isTransientDbError } from "./transient.ts";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const pid = async (db: PgDb) => (await db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;

test("a statement past queryTimeoutMs fails as transient, its connection is dropped, and the pool goes on", async () => {
  const db = new PgDb(url, { max: 1, applicationName: "pesan-timeout-test", queryTimeoutMs: 300 });
  try {
    const before = await pid(db);
    const started = Date.now();
    const e1: unknown = await db.query("SELECT pg_sleep(2)").catch((e: unknown) => e);
    expect(isTransientDbError(e1)).toBe(true);
    // Within the timeout, not after the sleep (2 s) ran out.
    expect(Date.now() - started).toBeLessThan(1800);
    const mid = await pid(db);
    expect(mid).not.toBe(before);
    const e2: unknown = await db.withTransaction((tx) => tx.query("SELECT pg_sleep(2)")).catch((e: unknown) => e);
    expect(isTransientDbError(e2)).toBe(true);
    expect(await pid(db)).not.toBe(mid);
    // A transaction may lift the limit (migrations do).
    await db.withTransaction((tx) => tx.query("SELECT pg_sleep(0.5)"), { queryTimeoutMs: 0 });
  } finally {
    await db.close();
  }
});

test("a transaction on a connection that became read-only (25006) fails as transient and the next one gets a writable connection", async () => {
  const db = new PgDb(url, { max: 1, applicationName: "pesan-readonly-test" });
  try {
    // The pool's one connection now behaves like one to a fenced (or demoted) primary.
    await db.query("SET default_transaction_read_only = on");
    const fenced = await pid(db);
    expect(await pid(db)).toBe(fenced);
    const e: unknown = await db.withTransaction((tx) => tx.query("CREATE TEMP TABLE ro_probe (x int)")).catch((err: unknown) => err);
    expect((e as { code?: string }).code).toBe("25006");
    expect(isTransientDbError(e)).toBe(true);
    const again = await db.withTransaction(async (tx) => {
      const r = await tx.query<{ ro: string; pid: number }>("SELECT current_setting('transaction_read_only') AS ro, pg_backend_pid() AS pid");
      return r.rows[0]!;
    });
    expect(again.ro).toBe("off");
    expect(again.pid).not.toBe(fenced);
  } finally {
    await db.close();
  }
});
