/**
 * Db.listen: a NOTIFY committed by another connection wakes the listener; a listening
 * connection the server drops (pg_terminate_backend, as in a Postgres restart) comes back by
 * itself and wakes the listener once for whatever it missed. Against the real Postgres
 * (DATABASE_URL's server) and against PGlite.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { PgDb } from "./db.ts";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a NOTIFY from another connection wakes the listener; only its own channel does", async () => {
  const db = new PgDb(url, { max: 2, applicationName: "pesan-listen-test" });
  let calls = 0;
  const l = await db.listen("pesan_test_wake", () => calls++);
  try {
    const atStart = calls; // one call right after connecting: "maybe you missed something"
    expect(atStart).toBe(1);
    await db.query("NOTIFY pesan_test_other");
    await db.withTransaction(async (tx) => {
      await tx.query("NOTIFY pesan_test_wake");
      await tx.query("NOTIFY pesan_test_wake"); // folded into one by Postgres
    });
    await until(() => calls === atStart + 1, 5000);
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toBe(atStart + 1);
  } finally {
    await l.close();
    await l.close();
    await db.close();
  }
});

test("a LISTEN connection killed by the server reconnects and wakes the listener again", async () => {
  const app = `pesan-listen-kill-${process.pid}`;
  const db = new PgDb(url, { max: 2, applicationName: app });
  let calls = 0;
  const l = await db.listen("pesan_test_kill", () => calls++);
  try {
    const killed = await db.query<{ n: number }>("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1", [`${app}-listen`]);
    expect(killed.rows[0]!.n).toBe(1);
    // Reconnected: the after-connect wake-up, then NOTIFYs reach it again.
    await until(() => calls >= 2, 10_000);
    const before = calls;
    await until(async () => {
      await db.query("NOTIFY pesan_test_kill");
      await new Promise((r) => setTimeout(r, 50));
      return calls > before;
    }, 5000);
  } finally {
    await l.close();
    await db.close();
  }
});

/** PGlite loads its WASM through a dynamic import() that jest's sandbox refuses: a child Node process runs it. */
test("PGlite: NOTIFY wakes the listener; close stops it", async () => {
  const script = `
    const { PgliteDb } = await import(${JSON.stringify(pathToFileURL(join(__dirname, "db.ts")).href)});
    const db = await PgliteDb.open();
    let calls = 0;
    const l = await db.listen("pesan_test_lite", () => calls++);
    await db.query("NOTIFY pesan_test_lite");
    for (let i = 0; i < 100 && calls === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const woken = calls;
    await l.close();
    await db.query("NOTIFY pesan_test_lite");
    await new Promise((r) => setTimeout(r, 100));
    console.log(JSON.stringify({ woken, afterClose: calls - woken }));
    await db.close();
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { cwd: __dirname, timeout: 60_000 });
  expect(JSON.parse(stdout.trim().split("\n").pop()!)).toEqual({ woken: 1, afterClose: 0 });
});

test("a channel name that is not a plain identifier is refused", async () => {
  const db = new PgDb(url, { max: 1 });
  try {
    await expect(db.listen("x; DROP TABLE users", () => undefined)).rejects.toThrow(/bad LISTEN channel name/);
  } finally {
    await db.close();
  }
});
