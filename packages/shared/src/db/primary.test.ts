/**
 * A multi-host DATABASE_URL against the real Postgres (DATABASE_URL's server): a host that
 * refuses connections is passed over, for the pool and for Db.listen alike; with no host up,
 * the error is the refusal (which isTransientDbError retries).
 */
import { PgDb } from "./db.ts";
import { isTransientDbError } from "./transient.ts";

const url = new URL(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres");
/** Port 1 on loopback: nothing listens there, so a connect is refused at once. */
const DEAD = "127.0.0.1:1";

function multiHost(hosts: string[]): string {
  const auth = url.username ? `${url.username}${url.password ? `:${url.password}` : ""}@` : "";
  return `postgres://${auth}${hosts.join(",")}${url.pathname}?target_session_attrs=read-write`;
}

test("the first writable host of the list is used, for queries, transactions and LISTEN", async () => {
  const db = new PgDb(multiHost([DEAD, url.host]), { max: 2, applicationName: "pesan-multihost-test" });
  let woken = 0;
  const l = await db.listen("pesan_test_multihost", () => woken++);
  try {
    const r = await db.query<{ port: number }>("SELECT inet_server_port() AS port");
    expect(r.rows[0]!.port).toBe(Number(url.port || 5432));
    expect(await db.withTransaction(async (tx) => (await tx.query<{ n: number }>("SELECT 1 AS n")).rows[0]!.n)).toBe(1);
    expect(woken).toBe(1); // connected (the wake-up after every connect)
    await db.query("NOTIFY pesan_test_multihost");
    const deadline = Date.now() + 5000;
    while (woken < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(woken).toBe(2);
  } finally {
    await l.close();
    await db.close();
  }
});

test("no host up: the connection refusal, which is retried as transient", async () => {
  const db = new PgDb(multiHost([DEAD, "127.0.0.1:2"]), { max: 1 });
  try {
    const e = await db.query("SELECT 1").catch((x: unknown) => x);
    expect((e as { code?: string }).code).toBe("ECONNREFUSED");
    expect(isTransientDbError(e)).toBe(true);
  } finally {
    await db.close();
  }
});
