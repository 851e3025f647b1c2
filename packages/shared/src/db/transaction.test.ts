/**
 * Db.withTransaction's durability option, against the real Postgres (DATABASE_URL's server):
 * a transaction marked not durable commits without waiting for the WAL flush, for itself only;
 * every other transaction on the same pooled connection still waits (SET LOCAL ends with it).
 */
import { PgDb } from "./db.ts";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

test("durable: false turns synchronous_commit off for that transaction only, and it still commits", async () => {
  // One connection, so the transactions below are certain to share it.
  const db = new PgDb(url, { max: 1, applicationName: "pesan-transaction-test" });
  try {
    const setting = (tx: { query: PgDb["query"] }) => tx.query<{ synchronous_commit: string }>("SHOW synchronous_commit").then((r) => r.rows[0]!.synchronous_commit);
    expect(await db.withTransaction(setting)).toBe("on");
    await db.query("CREATE TEMP TABLE t (x int)");
    expect(
      await db.withTransaction(
        async (tx) => {
          await tx.query("INSERT INTO t VALUES (1)");
          return setting(tx);
        },
        { durable: false },
      ),
    ).toBe("off");
    expect(await db.withTransaction(setting)).toBe("on");
    expect(await db.withTransaction(setting, { durable: true })).toBe("on");
    expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM t")).rows[0]!.n).toBe(1);
  } finally {
    await db.close();
  }
});
