/**
 * Exactly-once SEND in the router's batch (services/router/src/batch/exactly-once.ts) against a
 * real Postgres: the same stream entry processed twice (its router died between COMMIT and
 * publishing, and another took the entry over) answers the same and pushes its MSG again, under
 * the one id; a client's retry (a new entry, the same tag) gets the first reply and no second
 * message. What a user would see: one message, however often the SEND went.
 */
import { insertUser, migrate, PgDb } from "@pesan/shared/db";
import { sessionSendId } from "@pesan/shared/protocol";
import { processBatch, type CoreDeps, type Incoming } from "../services/router/src/batch/index.ts";
import { runCommands } from "../services/router/src/commands/index.ts";
import * as store from "../services/router/src/store.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

let tdb: TestDatabase;
let db: PgDb;
const now = new Date("2026-12-03T10:00:00.000Z");
let deps: CoreDeps;

beforeAll(async () => {
  tdb = await createTestDatabase();
  db = new PgDb(tdb.url, { max: 2, applicationName: "pesan-exactly-once-test" });
  await migrate(db);
  deps = {
    db,
    clock: () => now,
    settings: { cluster: "local", publicAddress: "127.0.0.1:4999", quota: 0, leaseMs: 60_000, resendBaseMs: 1000, inboxLimit: 100, plainSessions: "all", sessionsPerIp: 0, boxLimit: 100 },
  };
  for (const [user, addr] of [
    ["alice", "127.0.0.1:1001"],
    ["bob", "127.0.0.1:1002"],
  ] as const) {
    await insertUser(db, { name: user, passHash: "x", createdAt: now, home: "local" }, { ifAbsent: false });
    await store.upsertSession(db, { user, token: `tok-${user}`, cluster: "local", gateway: "gw1", addr, capAck: false, lastHeard: now, proofKeyId: "", proven: false, plainOk: true }, "local", now);
  }
}, 30_000);

afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

const sendFromAlice = (msgId: string): Incoming => ({ gateway: "gw1", addr: "127.0.0.1:1001", reqId: 7, text: "@t1 SEND bob hello once", msgId });
const lines = async (inc: Incoming) => (await processBatch(deps, [inc], runCommands)).map((o) => o.line[1]);
async function until(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await cond()); await new Promise((r) => setTimeout(r, 20))) if (Date.now() > deadline) throw new Error(`not true within ${ms} ms`);
}
const stored = async () => (await db.query<{ id: string; body: string }>("SELECT id, body FROM messages ORDER BY id")).rows;

test("a replayed entry answers the same and pushes again under one id; a client's retry gets the first reply, nothing new", async () => {
  // A tagged SEND's id is its session's and tag's (the same on every cluster), not its entry's.
  const id = sessionSendId("tok-alice", "t1", 0);
  const first = await lines(sendFromAlice("local:e1-000-000"));
  expect(first).toEqual([`MSG ${id} alice 2026-12-03T10:00:00.000Z hello once`, `@t1 OK SENT ${id} DELIVERED`]);
  expect(await stored()).toEqual([{ id, body: "hello once" }]);

  // The same entry again: its push may never have gone out, so it goes again (bob's client
  // drops an id it has). The reply may come first this time.
  expect((await lines(sendFromAlice("local:e1-000-000"))).sort()).toEqual([...first].sort());

  // A retry from the client is a new stream entry: the first reply, no push, no new message.
  expect(await lines(sendFromAlice("local:e2-000-000"))).toEqual([`@t1 OK SENT ${id} DELIVERED`]);
  expect(await stored()).toEqual([{ id, body: "hello once" }]);
  expect((await db.query("SELECT message_id, entry_id FROM send_dedup")).rows).toEqual([{ message_id: id, entry_id: "local:e1-000-000" }]);
});

test("a retry racing its first try on another router: the claim waits for it, then the retry gets its reply and stores nothing", async () => {
  // The first try, on another router, has claimed the tag and not committed yet: our batch's
  // opening read does not see it, and our claim waits on its row until it commits.
  const other = new PgDb(tdb.url, { max: 1, applicationName: "pesan-exactly-once-other" });
  try {
    let commitFirst!: () => void;
    let claimed!: () => void;
    const firstClaimed = new Promise<void>((r) => (claimed = r));
    const firstDone = other.withTransaction(async (tx) => {
      await tx.query("INSERT INTO send_dedup (token, tag, reply, message_id, created_at) VALUES ('tok-alice', 't2', 'OK SENT local:f1-000-000 STORED', 'local:f1-000-000', $1)", [now]);
      claimed();
      await new Promise<void>((r) => (commitFirst = r));
    });
    await firstClaimed;
    const retry = lines({ gateway: "gw1", addr: "127.0.0.1:1001", reqId: 8, text: "@t2 SEND bob the race", msgId: "local:f2-000-000" });
    // Our claim is waiting on the first try's row lock (so it is past its opening read).
    await until(async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pesan-exactly-once-test' AND wait_event_type = 'Lock'")).rows.length > 0);
    commitFirst();
    await firstDone;
    expect(await retry).toEqual(["@t2 OK SENT local:f1-000-000 STORED"]);
    expect((await stored()).map((m) => m.id)).not.toContain(sessionSendId("tok-alice", "t2", 0));
  } finally {
    await other.close();
  }
});

// Across clusters: the id of a tagged SEND is the same wherever the session sends it, so a
// cluster that has the message already (another cluster stored and replicated it, then died
// before answering) answers the retry with it. peer-exactly-once.test.ts runs it with clusters.
const copyOf = async (id: string, body: string, sentAt: Date, delivered = false) =>
  db.query("INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, replicated) VALUES ($1, $2, 'alice', 'bob', $3, $4, 0, true)", [id, sentAt, body, delivered]);

test("the send's message here already (replicated by the cluster that took it): OK SENT with its id, nothing stored or pushed", async () => {
  const id = sessionSendId("tok-alice", "x1", 0);
  await copyOf(id, "from the dead cluster", new Date(now.getTime() - 5_000), true);
  const before = (await stored()).length;
  expect(await lines({ gateway: "gw1", addr: "127.0.0.1:1001", reqId: 9, text: "@x1 SEND bob from the dead cluster", msgId: "local:g1-000-000" })).toEqual([`@x1 OK SENT ${id} DELIVERED`]);
  expect((await stored()).length).toBe(before);
});

test("an id held by another text, or by the tag's use over 60 s ago, or deleted: the send takes the tag's next generation", async () => {
  const [g0, g1, g2, g3] = [0, 1, 2, 3].map((g) => sessionSendId("tok-alice", "x2", g));
  await copyOf(g0!, "not this text", new Date(now.getTime() - 5_000));
  await copyOf(g1!, "the same text", new Date(now.getTime() - 61_000));
  await db.query("INSERT INTO message_tombstones (id, deleted_at) VALUES ($1, $2)", [g2, now]);
  const out = await lines({ gateway: "gw1", addr: "127.0.0.1:1001", reqId: 10, text: "@x2 SEND bob the same text", msgId: "local:h1-000-000" });
  expect(out).toEqual([`MSG ${g3} alice 2026-12-03T10:00:00.000Z the same text`, `@x2 OK SENT ${g3} DELIVERED`]);
  expect((await db.query("SELECT body FROM messages WHERE id = $1", [g0])).rows).toEqual([{ body: "not this text" }]);
});

// The router reads a tagged SEND's candidate ids without a lock; peer-sync may commit a copy at
// the chosen id before the router's insert (docs/peer-protocol.md "Exactly-once SEND across
// clusters"). Here another transaction inserts that row and holds it uncommitted, so our batch's
// read misses it and its insert waits on it; it commits once our insert is blocked.
async function raceWithCommittedCopy(tag: string, copyBody: string, text: string, reqId: number): Promise<string[]> {
  const other = new PgDb(tdb.url, { max: 1, applicationName: "pesan-exactly-once-peer" });
  try {
    let commitCopy!: () => void;
    let inserted!: () => void;
    const copyInserted = new Promise<void>((r) => (inserted = r));
    const copyDone = other.withTransaction(async (tx) => {
      await tx.query("INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, replicated) VALUES ($1, $2, 'alice', 'bob', $3, false, 0, true)", [
        sessionSendId("tok-alice", tag, 0),
        new Date(now.getTime() - 2_000),
        copyBody,
      ]);
      inserted();
      await new Promise<void>((r) => (commitCopy = r));
    });
    await copyInserted;
    const out = lines({ gateway: "gw1", addr: "127.0.0.1:1001", reqId, text: `@${tag} SEND bob ${text}`, msgId: `local:r${reqId}-000-000` });
    await until(async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pesan-exactly-once-test' AND wait_event_type = 'Lock'")).rows.length > 0);
    commitCopy();
    await copyDone;
    return await out;
  } finally {
    await other.close();
  }
}

test("a copy of other content committed at the chosen id while the batch ran: the send is stored at the next id, not answered and lost", async () => {
  const [g0, g1] = [0, 1].map((g) => sessionSendId("tok-alice", "race1", g));
  const out = await raceWithCommittedCopy("race1", "a lying peer's text", "alice's own text", 11);
  expect(out).toEqual([`MSG ${g1} alice 2026-12-03T10:00:00.000Z alice's own text`, `@race1 OK SENT ${g1} DELIVERED`]);
  const rows = (await db.query<{ id: string; body: string }>("SELECT id, body FROM messages WHERE id = ANY($1) ORDER BY body", [[g0, g1]])).rows;
  expect(rows).toEqual([
    { id: g0, body: "a lying peer's text" },
    { id: g1, body: "alice's own text" },
  ]);
  expect((await db.query("SELECT message_id FROM send_dedup WHERE token = 'tok-alice' AND tag = 'race1'")).rows).toEqual([{ message_id: g1 }]);
});

test("a peer's copy of this very send committed at its id while the batch ran: answered with that id, nothing pushed or stored twice", async () => {
  const g0 = sessionSendId("tok-alice", "race2", 0);
  const out = await raceWithCommittedCopy("race2", "the same words", "the same words", 12);
  expect(out).toEqual([`@race2 OK SENT ${g0} DELIVERED`]);
  expect((await db.query("SELECT id, body FROM messages WHERE id LIKE 't.%' AND body = 'the same words'")).rows).toEqual([{ id: g0, body: "the same words" }]);
});
