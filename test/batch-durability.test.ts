/**
 * Which router batches may commit without waiting for the WAL flush (services/router/src/batch/):
 * only those of ACKs and heartbeats that write nothing a crash must keep. Against a real
 * Postgres, through a Db that records each transaction's durability and statements. What an
 * operator relies on: a session's first proof and anything sent to the other clusters are on
 * disk when the batch's effects are acknowledged; a plain receipt need not be.
 */
import { insertUser, migrate, PgDb, type Db, type Queryable, type TransactionOptions } from "@pesan/shared/db";
import { processBatch, type CoreDeps, type Incoming } from "../services/router/src/batch/index.ts";
import { runCommands } from "../services/router/src/commands/index.ts";
import * as store from "../services/router/src/store.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

let tdb: TestDatabase;
let pgdb: PgDb;
const now = new Date("2026-12-03T10:00:00.000Z");
let deps: CoreDeps;
/** Each transaction: whether it began durable, and its statements. */
let seen: Array<{ durable: boolean; sql: string[] }> = [];

/** The real database; withTransaction also notes what each transaction did. */
function recording(db: PgDb): Db {
  return Object.assign(Object.create(db) as Db, {
    withTransaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T> {
      const t = { durable: opts?.durable !== false, sql: [] as string[] };
      seen.push(t);
      return db.withTransaction((tx) => fn({ query: (sql, params) => (t.sql.push(typeof sql === "string" ? sql : sql.text), tx.query(sql, params)), exec: (sql) => tx.exec(sql) }), opts);
    },
  });
}

const BOB = { gateway: "gw1", addr: "127.0.0.1:1002" };
const fromBob = (text: string, extra: Partial<Incoming> = {}): Incoming => ({ ...BOB, reqId: 0, text, msgId: "local:x", ...extra });
const upgraded = () => seen.at(-1)!.sql.includes("SET LOCAL synchronous_commit TO on");

beforeAll(async () => {
  tdb = await createTestDatabase("durable");
  pgdb = new PgDb(tdb.url, { max: 2, applicationName: "pesan-durability-test" });
  await migrate(pgdb);
  deps = {
    db: recording(pgdb),
    clock: () => now,
    settings: { cluster: "local", publicAddress: "127.0.0.1:4999", quota: 0, leaseMs: 60_000, resendBaseMs: 1000, inboxLimit: 100, plainSessions: "all", sessionsPerIp: 0, boxLimit: 100 },
  };
  for (const user of ["alice", "bob"]) await insertUser(pgdb, { name: user, passHash: "x", createdAt: now, home: "local" }, { ifAbsent: false });
  await store.upsertSession(pgdb, { user: "bob", token: "tok-bob", cluster: "local", ...BOB, capAck: true, lastHeard: now, proofKeyId: "key1", proven: false, plainOk: true }, "local", now);
  await store.upsertSession(pgdb, { user: "alice", token: "tok-alice", cluster: "local", gateway: "gw1", addr: "127.0.0.1:1001", capAck: false, lastHeard: now, proofKeyId: "", proven: false, plainOk: true }, "local", now);
  // m2 was sent to the other clusters too (replicated): its state changes go to peer_outbox.
  await pgdb.query(
    `INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, replicated) VALUES
       ('local:m1', $1, 'alice', 'bob', 'plain', false, 1, false), ('local:m2', $1, 'alice', 'bob', 'replicated', false, 1, true)`,
    [now],
  );
}, 30_000);

afterAll(async () => {
  await pgdb?.close();
  await tdb?.drop();
});

beforeEach(() => {
  seen = [];
});

test("an ACK of a local message and a heartbeat commit without waiting for the disk", async () => {
  await processBatch(deps, [fromBob("ACK local:m1"), fromBob("/@live?")], runCommands);
  expect(seen).toHaveLength(1);
  expect(seen[0]!.durable).toBe(false);
  expect(upgraded()).toBe(false);
  expect((await pgdb.query<{ delivered: boolean }>("SELECT delivered FROM messages WHERE id = 'local:m1'")).rows).toEqual([{ delivered: true }]);
});

test("an ACK that sends the message's state to the other clusters waits for the disk", async () => {
  await processBatch(deps, [fromBob("ACK local:m2")], runCommands);
  expect(seen[0]!.durable).toBe(false);
  expect(upgraded()).toBe(true);
  expect((await pgdb.query<{ n: number }>("SELECT count(*)::int AS n FROM peer_outbox WHERE kind = 'message.state'")).rows[0]!.n).toBe(1);
});

test("a PING with the session's first proof waits for the disk: a lost proof would let plain datagrams act again", async () => {
  await processBatch(deps, [fromBob("PING", { reqId: 3, proof: "key1" })], runCommands);
  expect(upgraded()).toBe(true);
  expect((await store.sessionOf(pgdb, "bob"))?.proven).toBe(true);
});

test("a SEND is durable from its first statement", async () => {
  await processBatch(deps, [{ gateway: "gw1", addr: "127.0.0.1:1001", reqId: 5, text: "SEND bob hi", msgId: "local:s1" }], runCommands);
  expect(seen[0]!.durable).toBe(true);
});
