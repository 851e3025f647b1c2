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
/** What the handlers ignored (the applier counts and logs these). */
const ignored: string[] = [];
const ctxFrom = (peer: string) => ({ peer, self: "c", now, ignore: (kind: string, reason: string, d: Record<string, string>) => void ignored.push(`${kind} ${reason} ${d.id ?? ""}`), unregisteredSessions: new Set<string>() });

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
async function applyRun(kind: string, run: unknown[], peer = "a"): Promise<void> {
  const k = FRAME_KINDS[kind]!;
  const items = run.map((data) => {
    const parsed = k.schema.safeParse(data);
    if (!parsed.success) throw new Error(`bad ${kind}`);
    return parsed.data;
  });
  await db.withTransaction((tx) => k.applyRun(tx, ctxFrom(peer), items));
}
/** From a, unless said otherwise: a frame about a message is sent by whoever changed it. */
const apply = (kind: string, data: unknown, peer = "a") => applyRun(kind, [data], peer);

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
  await apply("message.new", msg("b:1", "dave"), "b");
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
  await apply("message.new", msg("b:9", "dave"), "b");
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
  const ids = Array.from({ length: 50 }, (_, i) => `a:r${i}`);
  await applyRun("message.new", [...ids.map((id) => msg(id, "carol")), msg("a:r0", "carol")]);
  expect((await db.query("SELECT 1 FROM messages WHERE id LIKE 'a:r%' AND next_push_at IS NOT NULL AND NOT delivered")).rowCount).toBe(50);
  // In one run: delivered then read for r:0..9, deleted then delivered for r:10, read then a
  // stale undelivered for r11, states for ids never seen (r60, made in that state).
  await applyRun("message.state", [
    ...ids.slice(0, 10).map((id) => ({ ...msg(id, "carol"), delivered: true, read: false })),
    ...ids.slice(0, 10).map((id) => ({ ...msg(id, "carol"), delivered: true, read: true })),
    { id: "a:r10", recipient: "carol", deleted: true },
    { ...msg("a:r10", "carol"), delivered: true, read: false },
    { ...msg("a:r11", "carol"), delivered: true, read: true },
    { ...msg("a:r11", "carol"), delivered: false, read: false },
    { ...msg("a:r60", "dave"), delivered: true, read: false },
  ]);
  for (const id of ids.slice(0, 10)) expect(await row(id)).toMatchObject({ delivered: true, read: true, due: false });
  expect(await row("a:r10")).toBeUndefined();
  expect(await row("a:r11")).toMatchObject({ delivered: true, read: true, due: false });
  expect(await row("a:r12")).toMatchObject({ delivered: false, read: false, due: true });
  expect(await row("a:r60")).toMatchObject({ delivered: true, read: false, due: false, replicated: true });
  expect(ignored).toEqual([]);
});

test("ids belong to the cluster that made them: a peer can neither make nor change this cluster's messages it never gave away", async () => {
  ignored.length = 0;
  // c (this cluster) sent c:local to carol, whose session is here: pushed at once, never replicated.
  await db.query("INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, replicated) VALUES ('c:local', now(), 'dave', 'carol', 'mine', true, 1, false)");
  // c:given went to every peer (message.new): any of them may report its state.
  await db.query("INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, replicated) VALUES ('c:given', now(), 'carol', 'dave', 'yours', false, 0, true)");
  await apply("message.new", msg("c:later", "dave"));
  await apply("message.new", msg("b:claimed", "dave"));
  await apply("broadcast", { id: "c:bcast", sentAt: now.toISOString(), sender: "alice", body: "as c" });
  await apply("message.state", { ...msg("c:later2", "dave"), delivered: false, read: false });
  await apply("message.state", { id: "c:later3", recipient: "dave", deleted: true });
  await apply("message.state", { id: "c:local", recipient: "carol", deleted: true });
  await apply("message.state", { id: "c:given", recipient: "carol", deleted: true }); // not its recipient
  expect(await row("c:later")).toBeUndefined();
  expect(await row("b:claimed")).toBeUndefined();
  expect(await row("c:later2")).toBeUndefined();
  expect((await db.query("SELECT id FROM message_tombstones WHERE id IN ('c:later3', 'c:local', 'c:given')")).rows).toEqual([]);
  expect(await row("c:local")).toMatchObject({ delivered: true, replicated: false });
  expect(ignored.sort()).toEqual(
    ["message.new foreign_id c:later", "message.new foreign_id b:claimed", "broadcast foreign_id c:bcast", "message.state not_held c:later2", "message.state not_held c:later3", "message.state not_held c:local", "message.state not_held c:given"].sort(),
  );
  // What c gave away, a may change (dave read it there).
  await apply("message.state", { ...msg("c:given", "dave"), sender: "carol", body: "yours", delivered: true, read: true });
  expect(await row("c:given")).toMatchObject({ delivered: true, read: true });
});

test("a copy a third cluster made up for another cluster's id is replaced by the message its origin sends", async () => {
  // a claims b:next before b made it, with a text of its own ...
  await apply("message.state", { ...msg("b:next", "dave"), sender: "mallory", body: "forged", delivered: true, read: false });
  // ... then b's real message of that id arrives: it is b's to say what it is.
  await apply("message.new", { ...msg("b:next", "dave"), sender: "bob", body: "the real one" }, "b");
  const r = await db.query("SELECT sender, body, delivered FROM messages WHERE id = 'b:next'");
  expect(r.rows).toEqual([{ sender: "bob", body: "the real one", delivered: false }]);
  // b sending it again changes nothing.
  await db.query("UPDATE messages SET delivered = true WHERE id = 'b:next'");
  await apply("message.new", { ...msg("b:next", "dave"), sender: "bob", body: "the real one" }, "b");
  expect((await db.query("SELECT delivered FROM messages WHERE id = 'b:next'")).rows).toEqual([{ delivered: true }]);
});
