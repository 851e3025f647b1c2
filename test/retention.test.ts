/**
 * Bounded storage, the router's retention sweep (services/router/src/retention.ts) against a
 * real Postgres with the real schema: tiny limits through its settings, time through its clock.
 * What an operator checks: the rows that must go are gone, the ones that must stay (undelivered
 * messages, the dedup rows of the retry window) are there, a replicated copy's pruning sends
 * nothing to the other clusters, and two routers sweeping at once delete each row once.
 */
import { migrate, PgDb } from "@pesan/shared/db";
import { createLogger, createRegistry } from "@pesan/shared/observability";
import { createRouterMetrics, type RouterMetrics } from "../services/router/src/metrics.ts";
import { Retention, type RetentionSettings } from "../services/router/src/retention.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

let tdb: TestDatabase;
let db: PgDb;
const now = new Date("2026-11-22T12:00:00.000Z");
const ago = (ms: number) => new Date(now.getTime() - ms);
const DAY = 86_400_000;
const OFF: RetentionSettings = { messageRetentionMs: 0, messagesKeptPerUser: 0, connectionLogRetentionMs: 0, connectionLogMaxRows: 0, intervalMs: 60_000, batch: 1000 };

function sweeper(s: Partial<RetentionSettings>): { r: Retention; metrics: RouterMetrics } {
  const metrics = createRouterMetrics(createRegistry("router"));
  return { r: new Retention({ db, clock: () => now, logger: createLogger("router", "silent"), metrics }, { ...OFF, ...s }), metrics };
}

async function deleted(m: RouterMetrics, table: string, reason: string): Promise<number> {
  return (await m.retentionDeleted.get()).values.find((v) => v.labels.table === table && v.labels.reason === reason)?.value ?? 0;
}

let seq = 0;
async function message(recipient: string, sentAt: Date, state: { delivered?: boolean; read?: boolean; replicated?: boolean } = {}): Promise<string> {
  const id = `t:${(++seq).toString().padStart(5, "0")}`;
  await db.query("INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, read, replicated) VALUES ($1, $2, 'alice', $3, 'hi', $4, $5, $6)", [
    id,
    sentAt,
    recipient,
    state.delivered ?? false,
    state.read ?? false,
    state.replicated ?? false,
  ]);
  return id;
}

const idsOf = async (recipient: string) => (await db.query<{ id: string }>("SELECT id FROM messages WHERE recipient = $1 ORDER BY id", [recipient])).rows.map((r) => r.id);

beforeAll(async () => {
  tdb = await createTestDatabase("retention");
  db = new PgDb(tdb.url, { max: 6 });
  await migrate(db);
  await db.query("INSERT INTO users (name, pass_hash, home_cluster) SELECT 'u' || g, 'x', 'local' FROM generate_series(1, 450) g");
  await db.query("INSERT INTO users (name, pass_hash, home_cluster) VALUES ('alice', 'x', 'local'), ('bob', 'x', 'local'), ('carol', 'x', 'local')");
});

afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

test("by age: delivered and read messages older than MESSAGE_RETENTION_MS go; undelivered and newer ones stay; no frame, no tombstone", async () => {
  const oldDelivered = await message("bob", ago(2 * DAY), { delivered: true });
  const oldRead = await message("bob", ago(3 * DAY), { delivered: true, read: true });
  const oldReplicated = await message("bob", ago(2 * DAY), { delivered: true, replicated: true });
  const oldUndelivered = await message("bob", ago(40 * DAY));
  const oldUndeliveredCopy = await message("bob", ago(40 * DAY), { replicated: true });
  const recent = await message("bob", ago(DAY / 2), { delivered: true });
  const outboxBefore = (await db.query("SELECT 1 FROM peer_outbox")).rowCount;

  const { r, metrics } = sweeper({ messageRetentionMs: DAY, batch: 2 });
  const out = await r.sweep();

  expect(await idsOf("bob")).toEqual([oldUndelivered, oldUndeliveredCopy, recent].sort());
  expect(out["messages/age"]).toBe(3);
  expect(await deleted(metrics, "messages", "age")).toBe(3);
  // Each cluster prunes its own copies: nothing tells the others, nothing looks like a DELETE.
  expect((await db.query("SELECT 1 FROM peer_outbox")).rowCount).toBe(outboxBefore);
  expect((await db.query("SELECT id FROM message_tombstones WHERE id = ANY($1::text[])", [[oldDelivered, oldRead, oldReplicated]])).rowCount).toBe(0);
  await db.query("DELETE FROM messages");
});

test("per recipient: only the newest MESSAGES_KEPT_PER_USER delivered messages stay, in batches, across many users; undelivered ones all stay", async () => {
  const delivered: string[] = [];
  for (let i = 5; i >= 1; i--) delivered.push(await message("carol", ago(i * 60_000), { delivered: true }));
  const undelivered = [await message("carol", ago(10 * DAY)), await message("carol", ago(DAY)), await message("carol", ago(1000))];
  // Users after the first walk batch (200 users) are reached too: u99 sorts after carol, and
  // the u1..u450 names spread over three batches.
  const late: string[] = [];
  for (let i = 4; i >= 1; i--) late.push(await message("u99", ago(i * 60_000), { delivered: true }));
  const few = await message("alice", ago(DAY), { delivered: true });

  const { r, metrics } = sweeper({ messagesKeptPerUser: 2, batch: 1 });
  await r.sweep();

  expect(await idsOf("carol")).toEqual([...delivered.slice(-2), ...undelivered].sort());
  expect(await idsOf("u99")).toEqual(late.slice(-2).sort());
  expect(await idsOf("alice")).toEqual([few]);
  expect(await deleted(metrics, "messages", "cap")).toBe(3 + 2);
  await db.query("DELETE FROM messages");
});

test("connection_log: rows older than CONNECTION_LOG_RETENTION_MS go, then all but the newest CONNECTION_LOG_MAX_ROWS", async () => {
  const log = (at: Date, event: string) => db.query("INSERT INTO connection_log (user_name, event, cluster, at) VALUES ('bob', $1, 'local', $2)", [event, at]);
  await log(ago(3 * DAY), "old1");
  await log(ago(2 * DAY), "old2");
  for (let i = 1; i <= 6; i++) await log(ago(60_000 * (7 - i)), `new${i}`);

  const { r, metrics } = sweeper({ connectionLogRetentionMs: DAY, connectionLogMaxRows: 4, batch: 1 });
  await r.sweep();

  expect((await db.query<{ event: string }>("SELECT event FROM connection_log ORDER BY id")).rows.map((x) => x.event)).toEqual(["new3", "new4", "new5", "new6"]);
  expect(await deleted(metrics, "connection_log", "age")).toBe(2);
  expect(await deleted(metrics, "connection_log", "cap")).toBe(2);
});

test("send_dedup and pending CAP ACKs: only rows past the 60 s retry window go", async () => {
  await db.query("INSERT INTO send_dedup (token, tag, reply, created_at) VALUES ('t', 'inside', 'OK SENT x STORED', $1), ('t', 'past', 'OK SENT y STORED', $2)", [ago(59_000), ago(61_000)]);
  await db.query("INSERT INTO pending_caps (gateway, addr, created_at) VALUES ('g', 'a1', $1), ('g', 'a2', $2)", [ago(59_000), ago(61_000)]);
  const { r, metrics } = sweeper({});
  await r.sweepShortLived();
  expect((await db.query<{ tag: string }>("SELECT tag FROM send_dedup")).rows).toEqual([{ tag: "inside" }]);
  expect((await db.query<{ addr: string }>("SELECT addr FROM pending_caps")).rows).toEqual([{ addr: "a1" }]);
  expect(await deleted(metrics, "send_dedup", "window")).toBe(1);
});

test("two routers sweeping at once: every old row goes, each counted once, neither fails", async () => {
  await db.query(
    "INSERT INTO messages (id, sent_at, sender, recipient, body, delivered) SELECT 'bulk:' || lpad(g::text, 5, '0'), $1, 'alice', 'bob', 'x', true FROM generate_series(1, 3000) g",
    [ago(2 * DAY)],
  );
  const a = sweeper({ messageRetentionMs: DAY, batch: 100 });
  const b = sweeper({ messageRetentionMs: DAY, batch: 100 });
  // A sweep that found the other holding the lock stops its round; the next round goes on.
  for (let i = 0; i < 20 && (await idsOf("bob")).length > 0; i++) await Promise.all([a.r.sweep(), b.r.sweep()]);
  expect(await idsOf("bob")).toEqual([]);
  expect((await deleted(a.metrics, "messages", "age")) + (await deleted(b.metrics, "messages", "age"))).toBe(3000);
});
