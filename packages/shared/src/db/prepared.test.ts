/**
 * Prepared statements (`prepared`) against the real Postgres: parsed once per connection and
 * then only executed, through the pool and in transactions alike, with the same results as the
 * statement's text; a failure inside a transaction leaves the statement usable afterwards.
 */
import { PgDb, prepared } from "./db.ts";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

test("a prepared statement runs with its parameters, is prepared once per connection, and survives a failed transaction", async () => {
  // One connection, so every call below shares it (and its prepared statements).
  const db = new PgDb(url, { max: 1, applicationName: "pesan-prepared-test" });
  try {
    const sum = prepared("test.sum", "SELECT $1::int + $2::int AS n");
    expect((await db.query<{ n: number }>(sum, [2, 3])).rows).toEqual([{ n: 5 }]);
    expect(await db.withTransaction(async (tx) => (await tx.query<{ n: number }>(sum, [4, 5])).rows[0]!.n)).toBe(9);
    const named = await db.query<{ name: string }>("SELECT name FROM pg_prepared_statements");
    expect(named.rows.map((r) => r.name)).toEqual(["test.sum"]);
    // A statement that fails to prepare inside a transaction: the transaction fails, and the
    // next use prepares it on the same connection and works.
    const late = prepared("test.late", "SELECT x FROM pesan_prepared_test_t");
    await expect(db.withTransaction((tx) => tx.query(late))).rejects.toThrow(/pesan_prepared_test_t/);
    await db.query("CREATE TEMP TABLE pesan_prepared_test_t (x int)");
    await db.query("INSERT INTO pesan_prepared_test_t VALUES (7)");
    expect((await db.withTransaction((tx) => tx.query<{ x: number }>(late))).rows).toEqual([{ x: 7 }]);
    expect((await db.query<{ n: number }>(sum, [1, 1])).rows[0]!.n).toBe(2);
  } finally {
    await db.close();
  }
});

test("a bad statement name is refused before anything is sent", () => {
  for (const name of ["", "1abc", "has space", "semi;colon", "x".repeat(64)]) expect(() => prepared(name, "SELECT 1")).toThrow(/bad prepared statement name/);
  expect(prepared("router.batchView", "SELECT 1")).toEqual({ name: "router.batchView", text: "SELECT 1" });
});
