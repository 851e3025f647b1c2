/**
 * The hand-over of messages only this cluster has, for a recipient whose session another
 * cluster now holds (handOverUndelivered, used by peer-sync when a session moves and by the
 * routers' sweep for a SEND that raced the move), against a real Postgres.
 */
import { migrate, PgDb } from "@pesan/shared/db";
import { handOverUndelivered } from "@pesan/shared/replication";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

let tdb: TestDatabase;
let db: PgDb;
const now = new Date();
const ago = (ms: number) => new Date(now.getTime() - ms);

beforeAll(async () => {
  tdb = await createTestDatabase("handover");
  db = new PgDb(tdb.url, { max: 2 });
  await migrate(db);
  await db.query("INSERT INTO users (name, pass_hash, home_cluster) VALUES ('here', 'x', 'a'), ('moved', 'x', 'a'), ('away', 'x', 'a')");
  await db.query(
    `INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard) VALUES
       ('here', 't1', 'a', 'gw1', '127.0.0.1:9', now(), now()),
       ('moved', 't2', 'b', '', '', now(), now())`,
  );
  const msg = (id: string, recipient: string, sentAt: Date, delivered = false, replicated = false) =>
    db.query("INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, next_push_at, replicated) VALUES ($1, $2, 'here', $3, $4, $5, 1, $6, $7)", [
      id,
      sentAt,
      recipient,
      `body of ${id}`,
      delivered,
      delivered ? null : ago(-1000),
      replicated,
    ]);
  await msg("a:old", "moved", ago(5000)); // raced the move: to hand over
  await msg("a:fresh", "moved", ago(100)); // its batch may still be running: not yet
  await msg("a:done", "moved", ago(5000), true); // delivered already
  await msg("a:copied", "moved", ago(5000), false, true); // every peer has it already
  await msg("a:local", "here", ago(5000)); // its session is here
  await msg("a:offline", "away", ago(5000)); // offline: stays here until a login somewhere
}, 30_000);

afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

const outbox = async () => (await db.query<{ id: string }>("SELECT payload->>'id' AS id FROM peer_outbox WHERE kind = 'message.new' ORDER BY id")).rows.map((r) => r.id);

test("the sweep hands over only old, undelivered, never-replicated messages for sessions held elsewhere; once", async () => {
  expect(await handOverUndelivered(db, { cluster: "a", sentBefore: ago(1000), limit: 100 })).toBe(1);
  expect(await outbox()).toEqual(["a:old"]);
  const r = await db.query<{ replicated: boolean; due: boolean }>("SELECT replicated, next_push_at IS NOT NULL AS due FROM messages WHERE id = 'a:old'");
  expect(r.rows[0]).toEqual({ replicated: true, due: false });
  expect(await handOverUndelivered(db, { cluster: "a", sentBefore: ago(1000), limit: 100 })).toBe(0);
  const frame = await db.query<{ payload: Record<string, unknown> }>("SELECT payload FROM peer_outbox WHERE payload->>'id' = 'a:old'");
  expect(frame.rows[0]!.payload).toEqual({ id: "a:old", sentAt: ago(5000).toISOString(), sender: "here", recipient: "moved", body: "body of a:old" });
});

test("a moved session's own hand-over takes all of that user's (the fresh one too)", async () => {
  expect(await handOverUndelivered(db, { user: "moved" })).toBe(1);
  expect(await outbox()).toEqual(["a:fresh", "a:old"]);
});
