/**
 * Every set-based writer of peer_outbox (frames built in SQL from rows: the routers'
 * message.state after a read, an acknowledgement, a classic push and a delete; the hand-over's
 * message.new; a bootstrap's user.register and message.new) leaves rows that the receiving
 * side's zod schema decodes to exactly the same payload, against a real Postgres.
 */
import { migrate, PgDb } from "@pesan/shared/db";
import { FRAME_PAYLOADS, handOverUndelivered, type FrameKindName } from "@pesan/shared/replication";
import { bootstrapPeer } from "../services/peer-sync/src/store.ts";
import { ackMessages, deleteMessage, readMessage, takeUndelivered } from "../services/router/src/store.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

let tdb: TestDatabase;
let db: PgDb;
const now = new Date("2026-03-04T05:06:07.089Z");
const ago = (ms: number) => new Date(now.getTime() - ms);

beforeAll(async () => {
  tdb = await createTestDatabase("sqlframes");
  db = new PgDb(tdb.url, { max: 2 });
  await migrate(db);
  await db.query(
    `INSERT INTO users (name, pass_hash, home_cluster, created_at) VALUES
       ('ann', 'scrypt$ann', 'a', '2026-01-01T00:00:00.001Z'), ('bob', 'scrypt$bob', 'a', '2026-01-02T00:00:00Z'),
       ('dan', 'scrypt$dan', 'a', '2026-01-03T00:00:00Z'), ('carl', 'scrypt$carl', 'b', '2026-01-04T00:00:00Z')`,
  );
  await db.query("INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard) VALUES ('bob', 't2', 'b', '', '', now(), now())");
  await db.query("INSERT INTO peer_links (peer) VALUES ('b')");
  const msg = (id: string, recipient: string, sentAt: Date, replicated: boolean) =>
    db.query("INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, next_push_at, replicated) VALUES ($1, $2, 'ann', $3, $4, false, 1, $5, $6)", [
      id,
      sentAt,
      recipient,
      `body of ${id} «ü»`,
      ago(-1000),
      replicated,
    ]);
  await msg("a:read", "ann", ago(9000), true);
  await msg("a:ack", "ann", ago(8000), true);
  await msg("a:push", "dan", ago(7000), true);
  await msg("a:del", "ann", ago(6000), true);
  await msg("a:old", "bob", ago(5000), false);
  await msg("a:fresh", "bob", ago(100), false);
  await msg("a:boot", "carl", ago(4000), false);
}, 30_000);

afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

let seen = "0";
/** The rows written since the last call, each decoded by its kind's schema (which strips unknown keys: equal means exact). */
async function newFrames(): Promise<Array<{ kind: string; target: string | null; payload: Record<string, unknown> }>> {
  const r = await db.query<{ id: string; kind: string; target: string | null; payload: Record<string, unknown> }>(
    "SELECT id::text AS id, kind, target, payload FROM peer_outbox WHERE id > $1 ORDER BY id",
    [seen],
  );
  for (const row of r.rows) {
    expect(Object.keys(FRAME_PAYLOADS)).toContain(row.kind);
    const decoded = FRAME_PAYLOADS[row.kind as FrameKindName].safeParse(row.payload);
    if (!decoded.success) throw new Error(`${row.kind} ${JSON.stringify(row.payload)}: ${decoded.error.message}`);
    expect(decoded.data).toEqual(row.payload);
  }
  seen = r.rows.at(-1)?.id ?? seen;
  return r.rows.map((x) => ({ kind: x.kind, target: x.target, payload: x.payload }));
}

const full = (id: string, recipient: string, sentAt: Date, delivered: boolean, read: boolean) => ({
  kind: "message.state",
  target: null,
  payload: { id, recipient, sender: "ann", sentAt: sentAt.toISOString(), body: `body of ${id} «ü»`, delivered, read },
});

test("the routers' message.state frames (read, ack, classic push, delete) decode as message.state", async () => {
  await readMessage(db, "ann", "a:read");
  expect(await newFrames()).toEqual([full("a:read", "ann", ago(9000), true, true)]);
  await ackMessages(db, [{ id: "a:ack", recipient: "ann" }]);
  expect(await newFrames()).toEqual([full("a:ack", "ann", ago(8000), true, false)]);
  await takeUndelivered(db, "dan", false, ago(-1000), 10);
  expect(await newFrames()).toEqual([full("a:push", "dan", ago(7000), true, false)]);
  expect(await deleteMessage(db, "ann", "a:del", now)).toBe(true);
  expect(await newFrames()).toEqual([{ kind: "message.state", target: null, payload: { id: "a:del", recipient: "ann", deleted: true } }]);
});

test("the hand-over's message.new frames (the sweep and a moved session) decode as message.new", async () => {
  const mnew = (id: string, sentAt: Date) => ({
    kind: "message.new",
    target: null,
    payload: { id, sentAt: sentAt.toISOString(), sender: "ann", recipient: "bob", body: `body of ${id} «ü»` },
  });
  expect(await handOverUndelivered(db, { cluster: "a", sentBefore: ago(1000), limit: 100 })).toBe(1);
  expect(await newFrames()).toEqual([mnew("a:old", ago(5000))]);
  expect(await handOverUndelivered(db, { user: "bob" })).toBe(1);
  expect(await newFrames()).toEqual([mnew("a:fresh", ago(100))]);
});

test("a bootstrap's user.register and message.new frames, for that peer only, decode", async () => {
  expect(await db.withTransaction((tx) => bootstrapPeer(tx, "b", "a", now))).toEqual({ users: 3, messages: 3 });
  const frames = await newFrames();
  expect(frames.filter((f) => f.kind === "user.register")).toEqual(
    [
      ["ann", "2026-01-01T00:00:00.001Z"],
      ["bob", "2026-01-02T00:00:00.000Z"],
      ["dan", "2026-01-03T00:00:00.000Z"],
    ].map(([name, createdAt]) => ({ kind: "user.register", target: "b", payload: { name, passHash: `scrypt$${name}`, createdAt, home: "a" } })),
  );
  // Every undelivered message of this cluster's, oldest first (the two handed over already too: applying is idempotent).
  const messages = frames.filter((f) => f.kind === "message.new");
  expect(messages.map((f) => [f.payload.id, f.target])).toEqual([
    ["a:old", "b"],
    ["a:boot", "b"],
    ["a:fresh", "b"],
  ]);
  expect(messages[1]!.payload).toEqual({ id: "a:boot", sentAt: ago(4000).toISOString(), sender: "ann", recipient: "carl", body: "body of a:boot «ü»" });
  expect(frames).toHaveLength(6);
});
