/**
 * The message frame handlers against a real database, frame by frame, in the orders other
 * links can produce: a state before its message, a delete before its message, a state that
 * would go backwards, a push due for a session held here, a stale broadcast.
 */
import { migrate, PgDb } from "@pesan/shared/db";
import { FRAME_KINDS } from "../services/peer-sync/src/index.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

let tdb: TestDatabase;
let db: PgDb;
const now = new Date();
const ctx = { peer: "a", self: "c", now };

beforeAll(async () => {
  tdb = await createTestDatabase("msgapply");
  db = new PgDb(tdb.url, { max: 2 });
  await migrate(db);
  await db.query("INSERT INTO users (name, pass_hash, home_cluster) VALUES ('carol', 'x', 'c'), ('dave', 'x', 'b')");
  await db.query("INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard) VALUES ('carol', 't', 'c', 'gw1', '127.0.0.1:9', now(), now())");
}, 30_000);

afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

/** A run of frames of one kind, as the applier hands them over in one call. */
async function applyRun(kind: string, run: unknown[]): Promise<void> {
  const k = FRAME_KINDS[kind]!;
  const items = run.map((data) => {
    const parsed = k.schema.safeParse(data);
    if (!parsed.success) throw new Error(`bad ${kind}`);
    return parsed.data;
  });
  await db.withTransaction((tx) => k.applyRun(tx, ctx, items));
}
const apply = (kind: string, data: unknown) => applyRun(kind, [data]);

const row = async (id: string) =>
  (await db.query<{ delivered: boolean; read: boolean; push_attempts: number; due: boolean; replicated: boolean }>(
    "SELECT delivered, read, push_attempts, next_push_at IS NOT NULL AS due, replicated FROM messages WHERE id = $1",
    [id],
  )).rows[0];

const msg = (id: string, recipient: string) => ({ id, sentAt: new Date(now.getTime() - 1000).toISOString(), sender: "alice", recipient, body: `text of ${id}` });

test("message.new for a session held here is due for a push now; for an offline user it waits; applying twice changes nothing", async () => {
  await apply("message.new", msg("a:1", "carol"));
  await apply("message.new", msg("a:2", "dave"));
  await apply("message.new", msg("a:2", "dave"));
  expect(await row("a:1")).toEqual({ delivered: false, read: false, push_attempts: 0, due: true, replicated: true });
  expect(await row("a:2")).toEqual({ delivered: false, read: false, push_attempts: 0, due: false, replicated: true });
  // An unknown recipient (its account has not arrived over its link yet) is skipped, not an error.
  await apply("message.new", msg("a:3", "nobody"));
  expect(await row("a:3")).toBeUndefined();
});

test("message.state only moves forward and stops further pushes", async () => {
  await apply("message.state", { ...msg("a:1", "carol"), delivered: true, read: false });
  expect(await row("a:1")).toMatchObject({ delivered: true, read: false, due: false });
  await apply("message.state", { ...msg("a:1", "carol"), delivered: false, read: false });
  expect(await row("a:1")).toMatchObject({ delivered: true, read: false });
  await apply("message.state", { ...msg("a:1", "carol"), delivered: true, read: true });
  await apply("message.state", { ...msg("a:1", "carol"), delivered: true, read: false });
  expect(await row("a:1")).toMatchObject({ delivered: true, read: true });
});

test("a state that arrives before its message.new makes the copy in that state; the late message.new changes nothing", async () => {
  await apply("message.state", { ...msg("b:1", "dave"), delivered: true, read: false });
  await apply("message.new", msg("b:1", "dave"));
  expect(await row("b:1")).toMatchObject({ delivered: true, read: false, due: false, replicated: true });
});

test("a deleted message stays deleted, whatever arrives after", async () => {
  await apply("message.state", { id: "a:2", recipient: "dave", deleted: true });
  expect(await row("a:2")).toBeUndefined();
  await apply("message.new", msg("a:2", "dave"));
  await apply("message.state", { ...msg("a:2", "dave"), delivered: true, read: true });
  expect(await row("a:2")).toBeUndefined();
  // Deleted before it ever arrived here.
  await apply("message.state", { id: "b:9", recipient: "dave", deleted: true });
  await apply("message.new", msg("b:9", "dave"));
  expect(await row("b:9")).toBeUndefined();
});

test("a broadcast is queued for the sessions held here (not other clusters', not the sender's), and dropped when stale", async () => {
  await db.query("INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard) VALUES ('dave', 't2', 'b', '', '', now(), now())");
  await apply("broadcast", { id: "a:7", sentAt: now.toISOString(), sender: "alice", body: "hear ye" });
  const q = await db.query<{ gateway: string; addr: string; line: string }>("DELETE FROM pending_pushes RETURNING gateway, addr, line");
  expect(q.rows).toEqual([{ gateway: "gw1", addr: "127.0.0.1:9", line: `MSG a:7 *alice ${now.toISOString()} hear ye` }]);
  await apply("broadcast", { id: "a:8", sentAt: new Date(now.getTime() - 61_000).toISOString(), sender: "alice", body: "old news" });
  expect((await db.query("SELECT 1 FROM pending_pushes")).rowCount).toBe(0);
  expect((await db.query("SELECT 1 FROM messages WHERE id IN ('a:7', 'a:8')")).rowCount).toBe(0);
});

test("a run of many frames in one call ends as the same frames one by one would", async () => {
  const ids = Array.from({ length: 50 }, (_, i) => `r:${i}`);
  await applyRun("message.new", [...ids.map((id) => msg(id, "carol")), msg("r:0", "carol")]);
  expect((await db.query("SELECT 1 FROM messages WHERE id LIKE 'r:%' AND next_push_at IS NOT NULL AND NOT delivered")).rowCount).toBe(50);
  // In one run: delivered then read for r:0..9, deleted then delivered for r:10, read then a
  // stale undelivered for r:11, states for ids never seen (r:60, made in that state).
  await applyRun("message.state", [
    ...ids.slice(0, 10).map((id) => ({ ...msg(id, "carol"), delivered: true, read: false })),
    ...ids.slice(0, 10).map((id) => ({ ...msg(id, "carol"), delivered: true, read: true })),
    { id: "r:10", recipient: "carol", deleted: true },
    { ...msg("r:10", "carol"), delivered: true, read: false },
    { ...msg("r:11", "carol"), delivered: true, read: true },
    { ...msg("r:11", "carol"), delivered: false, read: false },
    { ...msg("r:60", "dave"), delivered: true, read: false },
  ]);
  for (const id of ids.slice(0, 10)) expect(await row(id)).toMatchObject({ delivered: true, read: true, due: false });
  expect(await row("r:10")).toBeUndefined();
  expect(await row("r:11")).toMatchObject({ delivered: true, read: true, due: false });
  expect(await row("r:12")).toMatchObject({ delivered: false, read: false, due: true });
  expect(await row("r:60")).toMatchObject({ delivered: true, read: false, due: false, replicated: true });
});
