/**
 * The router's SQL, one function per question. Every statement takes explicit times from the
 * injected clock, so tests control time and all routers agree on what "now" meant in a batch.
 *
 * The two statements every batch runs (batchView, storeSends) are prepared (`prepared`):
 * unprepared, parsing and planning them cost Postgres more than running them (issue 13, README
 * "Performance"). Postgres then keeps one generic plan per connection, made with the table
 * statistics of that moment (a fresh database's are of empty tables), so a prepared statement
 * must have one plan that fits any batch size and any table size: per-element index lookups
 * (batchView) or inserts (storeSends). Statements whose plan could turn into a scan stay
 * unprepared.
 */
import { prepared, type Queryable } from "@pesan/shared/db";
import { sqlIsProbeName } from "@pesan/shared/names";
import { framesFromRowsSql, sqlBool, sqlInstant, sqlText, SQL_TRUE } from "@pesan/shared/replication";
import { nearestFirst } from "./server-order.ts";

export interface Session {
  user: string;
  token: string;
  /** The cluster that holds the session; another cluster's sessions have no endpoint here (gateway = addr = ''). */
  cluster: string;
  gateway: string;
  addr: string;
  capAck: boolean;
  lastHeard: Date;
  /** Id of the proof key the last LOGIN/RESUME issued ('' before v2 or for another cluster's). */
  proofKeyId: string;
  /** A valid proof came since: the session accepts nothing without one; its address is validated. */
  proven: boolean;
  /** PLAIN_SESSIONS lets this session act without proofs. */
  plainOk: boolean;
}

export interface StoredMessage {
  id: string;
  sender: string;
  recipient: string;
  sentAt: Date;
  body: string;
  read: boolean;
}

export interface NewMessage {
  id: string;
  sentAt: Date;
  sender: string;
  recipient: string;
  body: string;
  delivered: boolean;
  pushAttempts: number;
  nextPushAt: Date | null;
  /** Also sent to the other clusters (message.new): its state changes are sent too. */
  replicated?: boolean;
}

type SessionRow = {
  user_name: string;
  token: string;
  cluster: string;
  gateway: string;
  addr: string;
  cap_ack: boolean;
  last_heard: Date | string;
  proof_key_id: string;
  proven: boolean;
  plain_ok: boolean;
};
const SESSION_COLS = "user_name, token, cluster, gateway, addr, cap_ack, last_heard, proof_key_id, proven, plain_ok";

function toSession(r: SessionRow): Session {
  return {
    user: r.user_name,
    token: r.token,
    cluster: r.cluster,
    gateway: r.gateway,
    addr: r.addr,
    capAck: r.cap_ack,
    lastHeard: new Date(r.last_heard),
    proofKeyId: r.proof_key_id,
    proven: r.proven,
    plainOk: r.plain_ok,
  };
}

type MessageRow = { id: string; sender: string; recipient: string; sent_at: Date | string; body: string; read: boolean };
function toMessage(r: MessageRow): StoredMessage {
  return { id: r.id, sender: r.sender, recipient: r.recipient, sentAt: new Date(r.sent_at), body: r.body, read: r.read };
}

/** A tagged SEND's first reply, the id of the message it stored, and the stream entry that stored it. */
export interface StoredReply {
  reply: string;
  messageId: string;
  /** The id the first try's stream entry had (Incoming.msgId): the same one again is a replay of that entry. */
  entry: string;
}

/**
 * Rows claimed before migration 011 carry no message id; their reply line ("OK SENT <id> ...")
 * names it. Rows before 013 carry no entry: their message id was the entry's (ids were then).
 */
const storedReply = (reply: string, messageId: string | null, entry: string | null): StoredReply => {
  const id = messageId ?? reply.split(" ")[2] ?? "";
  return { reply, messageId: id, entry: entry ?? id };
};

/** What a batch reads before its first command (Batch.prefetch), in one round trip. */
export interface BatchView {
  /** Sessions at the batch's endpoints. */
  sessions: Session[];
  /** The SEND targets that exist, each with its session if online. */
  users: Array<{ name: string; session: Session | undefined }>;
  /** Undelivered messages per SEND target, counted up to the box limit (empty when boxLimit is 0). */
  boxes: Map<string, number>;
  /** First replies of tagged SENDs still in the dedup window, by `token tag`. */
  replies: Map<string, StoredReply>;
}

const SESSION_JSON = (a: string): string => `json_build_object(${SESSION_COLS.split(", ").map((c) => `'${c}', ${a}.${c}`).join(", ")})`;

const SQL_BATCH_VIEW = prepared(
  "router.batchView",
  // Each array element is looked up on its own (LATERAL ... OFFSET 0 is planned as a separate
  // subquery, not flattened into a join): the planner has no join orders to search, and even
  // a custom plan cannot trade the index lookups for a hash join over all sessions, which it
  // did above 20 or so elements and which cost more than the lookups on 3,000 sessions.
  `SELECT
     (SELECT coalesce(json_agg(${SESSION_JSON("s")}), '[]')
        FROM unnest($1::text[], $2::text[]) AS e(gateway, addr)
        CROSS JOIN LATERAL (SELECT * FROM sessions s WHERE s.gateway = e.gateway AND s.addr = e.addr OFFSET 0) s) AS sessions,
     (SELECT coalesce(json_agg(json_build_object('name', u.name, 's', CASE WHEN s.user_name IS NULL THEN NULL ELSE ${SESSION_JSON("s")} END)), '[]')
        FROM unnest($3::text[]) AS t(name)
        CROSS JOIN LATERAL (SELECT u.name FROM users u WHERE u.name = t.name OFFSET 0) u
        LEFT JOIN LATERAL (SELECT * FROM sessions s WHERE s.user_name = u.name OFFSET 0) s ON true) AS users,
     (SELECT coalesce(json_agg(json_build_object('name', t.name,
               'n', (SELECT count(*)::int FROM (SELECT 1 FROM messages m WHERE m.recipient = t.name AND NOT m.delivered LIMIT $4) x))), '[]')
        FROM unnest($3::text[]) AS t(name) WHERE $4 > 0) AS boxes,
     (SELECT coalesce(json_agg(json_build_object('token', d.token, 'tag', d.tag, 'reply', d.reply, 'message_id', d.message_id, 'entry_id', d.entry_id)), '[]')
        FROM unnest($5::text[], $6::text[], $7::text[]) AS t(gateway, addr, tag)
        CROSS JOIN LATERAL (SELECT s.token FROM sessions s WHERE s.gateway = t.gateway AND s.addr = t.addr OFFSET 0) s
        CROSS JOIN LATERAL (SELECT * FROM send_dedup d WHERE d.token = s.token AND d.tag = t.tag AND d.created_at >= $8 OFFSET 0) d) AS replies`,
);

/**
 * The four reads every batch starts with (its sessions by endpoint, usersWithSessions, boxSizes,
 * sendReplies) as one statement: each round trip to Postgres costs a few tenths of a
 * millisecond here, and a one-message batch is mostly round trips (issue 13). Each part is
 * the same query as its single-purpose function; the JSON aggregates keep it one row.
 */
export async function batchView(
  q: Queryable,
  v: { endpoints: Array<{ gateway: string; addr: string }>; targets: string[]; boxLimit: number; tagged: Array<{ gateway: string; addr: string; tag: string }>; staleBefore: Date },
): Promise<BatchView> {
  // Each endpoint and target once: the lookups below are per element (the IN and = ANY forms
  // this replaced ignored repeats).
  const endpoints = [...new Map(v.endpoints.map((e) => [`${e.gateway}\u0000${e.addr}`, e])).values()];
  const targets = [...new Set(v.targets)];
  const r = await q.query<{ sessions: SessionRow[]; users: Array<{ name: string; s: SessionRow | null }>; boxes: Array<{ name: string; n: number }>; replies: Array<{ token: string; tag: string; reply: string; message_id: string | null; entry_id: string | null }> }>(
    SQL_BATCH_VIEW,
    [
      endpoints.map((e) => e.gateway),
      endpoints.map((e) => e.addr),
      targets,
      v.boxLimit,
      v.tagged.map((t) => t.gateway),
      v.tagged.map((t) => t.addr),
      v.tagged.map((t) => t.tag),
      v.staleBefore,
    ],
  );
  const row = r.rows[0]!;
  return {
    sessions: row.sessions.map(toSession),
    users: row.users.map((u) => ({ name: u.name, session: u.s ? toSession(u.s) : undefined })),
    boxes: new Map(row.boxes.map((x) => [x.name, Number(x.n)])),
    replies: new Map(row.replies.map((x) => [dedupKey(x.token, x.tag), storedReply(x.reply, x.message_id, x.entry_id)])),
  };
}

/** Existing users among names, with their session if online. */
export async function usersWithSessions(q: Queryable, names: string[]): Promise<Array<{ name: string; session: Session | undefined }>> {
  if (names.length === 0) return [];
  const r = await q.query<{ name: string } & Partial<SessionRow>>(
    `SELECT u.name, ${SESSION_COLS.split(", ").map((c) => `s.${c}`).join(", ")}
       FROM users u LEFT JOIN sessions s ON s.user_name = u.name WHERE u.name = ANY($1::text[])`,
    [names],
  );
  return r.rows.map((row) => ({ name: row.name, session: row.user_name ? toSession(row as SessionRow) : undefined }));
}

export async function passHashes(q: Queryable, names: string[]): Promise<Map<string, string>> {
  if (names.length === 0) return new Map();
  const r = await q.query<{ name: string; pass_hash: string }>("SELECT name, pass_hash FROM users WHERE name = ANY($1::text[])", [names]);
  return new Map(r.rows.map((x) => [x.name, x.pass_hash]));
}

/** Removes the account; returns its created_at (what identifies it across clusters), if it existed. */
export async function deleteUser(q: Queryable, name: string, now: Date): Promise<Date | undefined> {
  const r = await q.query<{ created_at: Date | string }>("DELETE FROM users WHERE name = $1 RETURNING created_at", [name]);
  const createdAt = r.rows[0] ? new Date(r.rows[0].created_at) : undefined;
  // A late user.register of this very account (over another peer link) must not bring it back.
  if (createdAt) await q.query("INSERT INTO user_tombstones (name, created_at, removed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [name, createdAt, now]);
  return createdAt;
}

/**
 * Hashes of accounts of these names that lost a registration race to another cluster's account
 * (peer-sync records them): a LOGIN with such a password gets ERR TAKEN, not ERR AUTH.
 */
export async function lostHashes(q: Queryable, names: string[]): Promise<Map<string, string[]>> {
  if (names.length === 0) return new Map();
  const r = await q.query<{ name: string; pass_hash: string }>("SELECT name, pass_hash FROM lost_registrations WHERE name = ANY($1::text[]) ORDER BY lost_at DESC", [names]);
  const out = new Map<string, string[]>();
  for (const x of r.rows) {
    const list = out.get(x.name) ?? [];
    list.push(x.pass_hash);
    out.set(x.name, list);
  }
  return out;
}

// --- replication to the other clusters (peer-sync sends peer_outbox; docs/peer-protocol.md) --

// Every frame goes through @pesan/shared/replication, typed by kind: enqueueFrame for one built
// in TypeScript, framesFromRowsSql for the message.state frames a statement's CTE writes.

/** Whether peer-sync ever linked this cluster to another (it seeds peer_links at start). */
export async function isLinked(q: Queryable): Promise<boolean> {
  const r = await q.query<{ linked: boolean }>("SELECT EXISTS (SELECT 1 FROM peer_links) AS linked");
  return r.rows[0]?.linked === true;
}

/** Columns of a changed message that a message.state frame carries (RETURNING of a CTE). */
const STATE_COLS = "m.id, m.sender, m.recipient, m.sent_at, m.body, m.read, m.delivered, m.replicated";
/**
 * An INSERT of one message.state frame per row of `from` (a CTE returning STATE_COLS) that
 * matches `where` (rows are `x`). The frame carries the whole message, so a peer that has not
 * yet received its message.new still ends with the right state.
 */
const STATE_FRAMES = (from: string, where: string): string =>
  framesFromRowsSql({
    kind: "message.state",
    payload: {
      id: sqlText("x.id"),
      recipient: sqlText("x.recipient"),
      sender: sqlText("x.sender"),
      sentAt: sqlInstant("x.sent_at"),
      body: sqlText("x.body"),
      delivered: sqlBool("x.delivered"),
      read: sqlBool("x.read"),
    },
    from: `${from} x WHERE ${where}`,
    orderBy: "x.sent_at, x.id",
  });
/** The message.state of a deleted replicated message, from `del` (its RETURNING id, recipient, replicated). */
const DELETED_FRAMES = framesFromRowsSql({
  kind: "message.state",
  payload: { id: sqlText("id"), recipient: sqlText("recipient"), deleted: SQL_TRUE },
  from: "del WHERE replicated",
});

/** Lines peer-sync left for local clients (`BYE replaced`), oldest first, taken once. */
export async function takePendingPushes(q: Queryable, limit: number): Promise<Array<{ gateway: string; addr: string; line: string }>> {
  const r = await q.query<{ id: string; gateway: string; addr: string; line: string }>(
    `DELETE FROM pending_pushes WHERE id IN (SELECT id FROM pending_pushes ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING id, gateway, addr, line`,
    [limit],
  );
  return r.rows.sort((a, b) => Number(a.id) - Number(b.id)).map((x) => ({ gateway: x.gateway, addr: x.addr, line: x.line }));
}

export async function sessionOf(q: Queryable, user: string): Promise<Session | undefined> {
  const r = await q.query<SessionRow>(`SELECT ${SESSION_COLS} FROM sessions WHERE user_name = $1 FOR UPDATE`, [user]);
  return r.rows[0] ? toSession(r.rows[0]) : undefined;
}

export async function sessionAt(q: Queryable, gateway: string, addr: string): Promise<Session | undefined> {
  const r = await q.query<SessionRow>(`SELECT ${SESSION_COLS} FROM sessions WHERE gateway = $1 AND addr = $2 FOR UPDATE`, [gateway, addr]);
  return r.rows[0] ? toSession(r.rows[0]) : undefined;
}

export async function upsertSession(q: Queryable, s: Session, cluster: string, now: Date): Promise<void> {
  await q.query(
    `INSERT INTO sessions (user_name, token, cluster, gateway, addr, cap_ack, login_at, last_heard, proof_key_id, proven, plain_ok)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)
     ON CONFLICT (user_name) DO UPDATE SET token = EXCLUDED.token, cluster = EXCLUDED.cluster, gateway = EXCLUDED.gateway,
       addr = EXCLUDED.addr, cap_ack = EXCLUDED.cap_ack, login_at = EXCLUDED.login_at, last_heard = EXCLUDED.last_heard, reach = '',
       proof_key_id = EXCLUDED.proof_key_id, proven = EXCLUDED.proven, plain_ok = EXCLUDED.plain_ok`,
    [s.user, s.token, cluster, s.gateway, s.addr, s.capAck, now, s.proofKeyId, s.proven, s.plainOk],
  );
}

/** The first valid proof since the key was issued (only for that key: a newer bind is not proven by it). */
export async function markProven(q: Queryable, proofs: Array<{ user: string; keyId: string }>): Promise<void> {
  if (proofs.length === 0) return;
  await q.query(
    `UPDATE sessions s SET proven = true FROM unnest($1::text[], $2::text[]) AS p(user_name, key_id)
      WHERE s.user_name = p.user_name AND s.proof_key_id = p.key_id AND NOT s.proven`,
    [proofs.map((p) => p.user), proofs.map((p) => p.keyId)],
  );
}

/** Sessions this cluster holds at addresses of one IP (the limit on sessions per IP), other users'. */
export async function countSessionsFromIp(q: Queryable, cluster: string, addrPrefix: string, exceptUser: string): Promise<number> {
  const r = await q.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM sessions WHERE cluster = $1 AND left(addr, length($2)) = $2 AND user_name <> $3",
    [cluster, addrPrefix, exceptUser],
  );
  return r.rows[0]?.n ?? 0;
}

/**
 * MSGs the gateway withheld (amplification bound): a classic session's message counted as
 * delivered when pushed is undelivered again, and the stranded sweep offers it again, never
 * one read since. Wherever the session is now: it may have moved (a LOGIN or RESUME elsewhere)
 * between the push and this notice, and a message that reached nobody must not stay delivered.
 * The gateway only withholds what a router pushed to the message's recipient, so the id is
 * enough; a message pushed again meanwhile is at worst pushed once more, under its id.
 */
export async function undeliverWithheld(q: Queryable, ids: string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await q.query("UPDATE messages SET delivered = false, push_attempts = 0, next_push_at = NULL WHERE id = ANY($1::text[]) AND delivered AND NOT read", [ids]);
  return r.rowCount ?? 0;
}

export async function deleteSession(q: Queryable, user: string): Promise<void> {
  await q.query("DELETE FROM sessions WHERE user_name = $1", [user]);
}

export async function setCapAck(q: Queryable, user: string): Promise<void> {
  await q.query("UPDATE sessions SET cap_ack = true WHERE user_name = $1", [user]);
}

export async function rememberPendingCap(q: Queryable, gateway: string, addr: string, now: Date): Promise<void> {
  await q.query(
    "INSERT INTO pending_caps (gateway, addr, created_at) VALUES ($1, $2, $3) ON CONFLICT (gateway, addr) DO UPDATE SET created_at = EXCLUDED.created_at",
    [gateway, addr, now],
  );
}

/** Consumes a CAP ACK sent from this endpoint before LOGIN, if recent enough. */
export async function takePendingCap(q: Queryable, gateway: string, addr: string, notBefore: Date): Promise<boolean> {
  const r = await q.query<{ created_at: Date }>("DELETE FROM pending_caps WHERE gateway = $1 AND addr = $2 RETURNING created_at", [gateway, addr]);
  const row = r.rows[0];
  return row !== undefined && new Date(row.created_at) >= notBefore;
}

export async function logConnection(q: Queryable, user: string, event: string, cluster: string, gateway: string | null, addr: string | null, now: Date): Promise<void> {
  await q.query("INSERT INTO connection_log (user_name, event, cluster, gateway, addr, at) VALUES ($1, $2, $3, $4, $5, $6)", [
    user,
    event,
    cluster,
    gateway,
    addr,
    now,
  ]);
}

/**
 * Who is online (WHO, the login's ONLINE list): sessions held here and by the clusters that are
 * UP. A DOWN cluster's users cannot be reached; they are listed again once they RESUME
 * elsewhere or their cluster is back (the same rule as ALL's count). Probe accounts are not
 * listed (@pesan/shared/names isProbeName).
 */
export async function onlineUsers(q: Queryable, cluster: string): Promise<string[]> {
  const r = await q.query<{ user_name: string }>(
    `SELECT s.user_name FROM sessions s
      WHERE (s.cluster = $1 OR EXISTS (SELECT 1 FROM server_list l WHERE l.name = s.cluster AND l.active AND NOT l.is_self))
        AND NOT ${sqlIsProbeName("s.user_name")}
      ORDER BY s.user_name`,
    [cluster],
  );
  return r.rows.map((x) => x.user_name);
}

/** Sessions this cluster holds (the ones with an endpoint here). */
export async function localSessions(q: Queryable, cluster: string): Promise<Session[]> {
  const r = await q.query<SessionRow>(`SELECT ${SESSION_COLS} FROM sessions WHERE cluster = $1`, [cluster]);
  return r.rows.map(toSession);
}

/**
 * Sessions other clusters hold, as peer-sync last told us, counted only for clusters that are
 * UP (a `broadcast` frame reaches only those in time): what `ALL` counts there. Probe accounts
 * get no broadcast (peer-sync skips them too) and are not counted.
 */
export async function countRemoteOnline(q: Queryable, cluster: string, exceptUser: string): Promise<number> {
  const r = await q.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM sessions s JOIN server_list l ON l.name = s.cluster AND l.active AND NOT l.is_self
      WHERE s.cluster <> $1 AND s.user_name <> $2 AND NOT ${sqlIsProbeName("s.user_name")}`,
    [cluster, exceptUser],
  );
  return Number(r.rows[0]?.n ?? 0);
}

/** Users' sessions this cluster holds (QUOTA, SERVERS); other clusters' sessions count there. Probe accounts are no users. */
export async function countOnline(q: Queryable, cluster: string, exceptUser?: string): Promise<number> {
  const r = await q.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM sessions WHERE cluster = $1 AND user_name IS DISTINCT FROM $2 AND NOT ${sqlIsProbeName("user_name")}`,
    [cluster, exceptUser ?? null],
  );
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * Marks acknowledged pushes delivered; only the recipient's own messages. Returns the
 * message.state frames written for replicated ones.
 */
export async function ackMessages(q: Queryable, acks: Array<{ id: string; recipient: string }>): Promise<number> {
  if (acks.length === 0) return 0;
  const r = await q.query(
    `WITH upd AS (
       UPDATE messages m SET delivered = true, next_push_at = NULL
         FROM unnest($1::text[], $2::text[]) AS a(id, recipient)
        WHERE m.id = a.id AND m.recipient = a.recipient AND NOT m.delivered
       RETURNING ${STATE_COLS}
     )
     ${STATE_FRAMES("upd", "x.replicated")}`,
    [acks.map((a) => a.id), acks.map((a) => a.recipient)],
  );
  // The statement is the frames' INSERT: its row count is how many went to peer_outbox.
  return r.rowCount;
}

export async function touchSessions(q: Queryable, users: string[], now: Date): Promise<void> {
  if (users.length === 0) return;
  // Sorted so two routers touching overlapping sets lock rows in one order (no deadlock).
  await q.query("UPDATE sessions SET last_heard = $2 WHERE user_name = ANY($1::text[]) AND last_heard < $2", [[...users].sort(), now]);
}

/** Undelivered messages for a user, oldest first, marked as pushed now. */
export async function takeUndelivered(q: Queryable, user: string, capAck: boolean, nextPushAt: Date, limit: number): Promise<StoredMessage[]> {
  // A classic session has it now: a replicated copy tells the other clusters (message.state).
  const r = await q.query<MessageRow>(
    `WITH upd AS (
       UPDATE messages m SET delivered = NOT $2::boolean, push_attempts = 1, next_push_at = CASE WHEN $2::boolean THEN $3::timestamptz ELSE NULL END
         FROM (SELECT id FROM messages WHERE recipient = $1 AND NOT delivered ORDER BY sent_at, seq, id LIMIT $4 FOR UPDATE) d
        WHERE m.id = d.id
        RETURNING ${STATE_COLS}, m.seq
     ), st AS (${STATE_FRAMES("upd", "x.replicated AND x.delivered")})
     SELECT id, sender, recipient, sent_at, body, read FROM upd ORDER BY sent_at, seq, id`,
    [user, capAck, nextPushAt, limit],
  );
  // In the order stored (migration 016): two SENDs of one batch share sent_at, and a tagged
  // SEND's id is a hash, so the id alone would not keep them in the order they were sent.
  return r.rows.map(toMessage);
}

export async function messageById(q: Queryable, id: string): Promise<StoredMessage | undefined> {
  const r = await q.query<MessageRow>("SELECT id, sender, recipient, sent_at, body, read FROM messages WHERE id = $1", [id]);
  return r.rows[0] ? toMessage(r.rows[0]) : undefined;
}

export async function inbox(q: Queryable, user: string, limit: number): Promise<StoredMessage[]> {
  const r = await q.query<MessageRow>(
    "SELECT id, sender, recipient, sent_at, body, read FROM messages WHERE recipient = $1 ORDER BY sent_at DESC, seq DESC, id DESC LIMIT $2",
    [user, limit],
  );
  return r.rows.map(toMessage).reverse();
}

export async function readMessage(q: Queryable, user: string, id: string): Promise<StoredMessage | undefined> {
  const r = await q.query<MessageRow>(
    `WITH upd AS (
       UPDATE messages m SET read = true, delivered = true, next_push_at = NULL WHERE m.id = $1 AND m.recipient = $2
       RETURNING ${STATE_COLS}
     ), st AS (${STATE_FRAMES("upd", "x.replicated")})
     SELECT id, sender, recipient, sent_at, body, read FROM upd`,
    [id, user],
  );
  return r.rows[0] ? toMessage(r.rows[0]) : undefined;
}

/** Deletes the recipient's message; a replicated one is deleted in every cluster (and stays so). */
export async function deleteMessage(q: Queryable, user: string, id: string, now: Date): Promise<boolean> {
  const r = await q.query<{ n: number }>(
    `WITH del AS (DELETE FROM messages WHERE id = $1 AND recipient = $2 RETURNING id, recipient, replicated),
     tomb AS (INSERT INTO message_tombstones (id, deleted_at) SELECT id, $3 FROM del WHERE replicated ON CONFLICT (id) DO NOTHING),
     st AS (${DELETED_FRAMES})
     SELECT count(*)::int AS n FROM del`,
    [id, user, now],
  );
  return Number(r.rows[0]?.n ?? 0) === 1;
}

/** The key of a (session, tag) pair of exactly-once SEND in the maps of its claims and replies. */
export function dedupKey(token: string, tag: string): string {
  return `${token} ${tag}`;
}

/** What storeSends did: the pairs it claimed (dedupKey) and the ids of the messages it inserted. */
export interface StoredSends {
  claimed: Set<string>;
  inserted: Set<string>;
}

// Prepared: its plan is the same whatever the statistics (inserts of the given rows through the
// tables' unique indexes), so the generic one is never worse than a custom one.
const SQL_STORE_SENDS = prepared("router.storeSends", `WITH x AS (
       SELECT * FROM json_to_recordset($1::json) AS f(id text, sent_at timestamptz, sender text, recipient text, body text, delivered boolean,
         push_attempts int, next_push_at timestamptz, replicated boolean, token text, tag text, reply text, entry text)
     ), claimed AS (
       INSERT INTO send_dedup (token, tag, reply, message_id, entry_id, created_at)
       SELECT token, tag, reply, id, entry, $2::timestamptz FROM x WHERE tag IS NOT NULL
       ON CONFLICT (token, tag) DO UPDATE SET reply = EXCLUDED.reply, message_id = EXCLUDED.message_id, entry_id = EXCLUDED.entry_id, created_at = EXCLUDED.created_at
         WHERE send_dedup.created_at < $3::timestamptz
       RETURNING token, tag
     ), stored AS (
       INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts, next_push_at, replicated)
       SELECT id, sent_at, sender, recipient, body, delivered, push_attempts, next_push_at, replicated FROM x
        WHERE x.tag IS NULL OR EXISTS (SELECT 1 FROM claimed c WHERE c.token = x.token AND c.tag = x.tag)
       ON CONFLICT (id) DO NOTHING
       RETURNING id
     )
     SELECT 'claimed' AS kind, token, tag, NULL AS id FROM claimed
     UNION ALL SELECT 'inserted', NULL, NULL, id FROM stored`);
/**
 * A batch's SENDs in one statement: claims the (session, tag) pairs of the tagged ones for
 * exactly-once SEND (a pair another transaction holds fresh, under 60 s, is not claimed) and
 * stores the messages of the untagged ones and of those whose tag it claimed. A tagged SEND
 * whose pair is not claimed is a retry racing its first try (or our own entry replayed), and
 * its message is not stored again. A message whose id another transaction committed meanwhile
 * is not inserted (ON CONFLICT DO NOTHING): `inserted` says which were (exactly-once.ts must
 * not answer for the others as if stored). The sends go as one JSON parameter, unpacked by
 * Postgres (as peer-sync's upsertCopies), not as a dozen column arrays.
 */
export async function storeSends(
  q: Queryable,
  sends: Array<{ msg: NewMessage; dedup: { token: string; tag: string; reply: string; entry: string } | undefined }>,
  now: Date,
  staleBefore: Date,
): Promise<StoredSends> {
  if (sends.length === 0) return { claimed: new Set(), inserted: new Set() };
  const rows = sends.map(({ msg: m, dedup: d }) => ({
    id: m.id,
    sent_at: m.sentAt,
    sender: m.sender,
    recipient: m.recipient,
    body: m.body,
    delivered: m.delivered,
    push_attempts: m.pushAttempts,
    next_push_at: m.nextPushAt,
    replicated: m.replicated === true,
    token: d?.token ?? null,
    tag: d?.tag ?? null,
    reply: d?.reply ?? null,
    entry: d?.entry ?? null,
  }));
  const r = await q.query<{ kind: "claimed" | "inserted"; token: string | null; tag: string | null; id: string | null }>(
    SQL_STORE_SENDS,
    [JSON.stringify(rows), now, staleBefore],
  );
  const out: StoredSends = { claimed: new Set(), inserted: new Set() };
  for (const x of r.rows) {
    if (x.kind === "claimed") out.claimed.add(dedupKey(x.token!, x.tag!));
    else out.inserted.add(x.id!);
  }
  return out;
}

/** First replies of tagged SENDs still inside the dedup window. */
export async function sendReplies(q: Queryable, pairs: Array<{ token: string; tag: string }>, staleBefore: Date): Promise<Map<string, StoredReply>> {
  if (pairs.length === 0) return new Map();
  const r = await q.query<{ token: string; tag: string; reply: string; message_id: string | null; entry_id: string | null }>(
    "SELECT token, tag, reply, message_id, entry_id FROM send_dedup WHERE (token, tag) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND created_at >= $3",
    [pairs.map((p) => p.token), pairs.map((p) => p.tag), staleBefore],
  );
  return new Map(r.rows.map((x) => [dedupKey(x.token, x.tag), storedReply(x.reply, x.message_id, x.entry_id)]));
}

/** A message (or a deleted one's tombstone) holding one of the ids a tagged SEND may take. */
export interface TakenId {
  id: string;
  /** Undefined for a tombstone (the message was deleted). */
  message?: { sender: string; recipient: string; body: string; sentAt: Date; delivered: boolean };
}

/**
 * Which of these ids a message here has, or had (tombstone): the candidates of tagged SENDs
 * (exactly-once.ts), whose message another cluster may have stored and replicated here.
 */
export async function takenIds(q: Queryable, ids: string[]): Promise<Map<string, TakenId>> {
  if (ids.length === 0) return new Map();
  const r = await q.query<{ id: string; sender: string | null; recipient: string | null; body: string | null; sent_at: Date | string | null; delivered: boolean | null }>(
    `SELECT id, sender, recipient, body, sent_at, delivered FROM messages WHERE id = ANY($1::text[])
     UNION ALL SELECT t.id, NULL, NULL, NULL, NULL, NULL FROM message_tombstones t WHERE t.id = ANY($1::text[]) AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = t.id)`,
    [ids],
  );
  return new Map(
    r.rows.map((x) => [
      x.id,
      x.sender === null ? { id: x.id } : { id: x.id, message: { sender: x.sender, recipient: x.recipient!, body: x.body!, sentAt: new Date(x.sent_at!), delivered: x.delivered === true } },
    ]),
  );
}

export interface ServerRow {
  name: string;
  address: string;
  active: boolean;
  proximity: number;
  /** peer-sync's measured round trip to it (ms); undefined when never measured. */
  rttMs: number | undefined;
  quota: number;
  online: number;
  isSelf: boolean;
}

export async function upsertSelfServer(q: Queryable, s: { name: string; address: string; quota: number }, now: Date): Promise<void> {
  await q.query(
    `INSERT INTO server_list (name, address, active, proximity, quota, is_self, last_seen) VALUES ($1, $2, true, 0, $3, true, $4)
     ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, active = true, proximity = 0, quota = EXCLUDED.quota, is_self = true, last_seen = EXCLUDED.last_seen`,
    [s.name, s.address, s.quota, now],
  );
}

/** Servers from static configuration, known before peer-sync says anything of them. */
export async function seedServers(q: Queryable, servers: Array<{ name: string; address: string; proximity: number }>): Promise<void> {
  for (const s of servers) {
    await q.query(
      // Rows peer-sync manages (it knows the peer's sync URL) are its to update, not ours.
      "INSERT INTO server_list (name, address, active, proximity) VALUES ($1, $2, false, $3) ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, proximity = EXCLUDED.proximity WHERE NOT server_list.is_self AND server_list.sync_url IS NULL",
      [s.name, s.address, s.proximity],
    );
  }
}

/** Every known server, nearest first (server-order.ts: the one rule, for SERVERS and ERR FULL). */
export async function servers(q: Queryable): Promise<ServerRow[]> {
  const r = await q.query<{ name: string; address: string; active: boolean; proximity: number; rtt_ms: number | null; quota: number; online: number; is_self: boolean }>(
    "SELECT name, address, active, proximity, rtt_ms, quota, online, is_self FROM server_list",
  );
  return nearestFirst(
    r.rows.map((x) => ({ name: x.name, address: x.address, active: x.active, proximity: x.proximity, rttMs: x.rtt_ms ?? undefined, quota: x.quota, online: x.online, isSelf: x.is_self })),
  );
}

// --- background work ---------------------------------------------------------------------

export interface Due extends StoredMessage {
  gateway: string;
  addr: string;
  attempts: number;
}

/**
 * Reliable delivery: claims pushes whose resend is due (SKIP LOCKED, so routers share the
 * work), schedules the next one with exponential backoff, and stops after maxAttempts; the
 * message then stays undelivered and is offered again at the next login.
 */
export async function takeDueResends(q: Queryable, cluster: string, now: Date, baseMs: number, maxDelayMs: number, maxAttempts: number, limit: number): Promise<Due[]> {
  // The first push of a message that came from another cluster is due at once (peer-sync
  // sets next_push_at when the recipient's session is here): a classic session has it then,
  // a CAP ACK one gets the usual resends. A session that may not be pushed to before its
  // first proof (PLAIN_SESSIONS) counts as none: that proof pushes what waits (validated()).
  const r = await q.query<MessageRow & { gateway: string | null; addr: string | null; push_attempts: number }>(
    `WITH due AS (
       SELECT m.id, s.gateway, s.addr, s.cap_ack FROM messages m
         LEFT JOIN sessions s ON s.user_name = m.recipient AND s.cluster = $6 AND (s.proven OR s.plain_ok)
        WHERE m.next_push_at IS NOT NULL AND m.next_push_at <= $1
        ORDER BY m.next_push_at LIMIT $4 FOR UPDATE OF m SKIP LOCKED
     ), upd AS (
       UPDATE messages m SET push_attempts = m.push_attempts + 1,
         delivered = m.delivered OR (due.gateway IS NOT NULL AND NOT due.cap_ack),
         next_push_at = CASE WHEN m.push_attempts + 1 >= $3 OR due.gateway IS NULL OR NOT due.cap_ack THEN NULL
                             ELSE $1::timestamptz + make_interval(secs => least($2::float8 * power(2, m.push_attempts), $5::float8) / 1000.0) END
         FROM due WHERE m.id = due.id
       RETURNING ${STATE_COLS}, due.gateway, due.addr, m.push_attempts
     ), st AS (${STATE_FRAMES("upd", "x.replicated AND x.delivered")})
     SELECT * FROM upd`,
    [now, baseMs, maxAttempts, limit, maxDelayMs, cluster],
  );
  const out: Due[] = [];
  for (const row of r.rows) if (row.gateway && row.addr) out.push({ ...toMessage(row), gateway: row.gateway, addr: row.addr, attempts: row.push_attempts });
  return out;
}

/**
 * Messages stored as offline while their recipient was logging in through another router
 * (the two transactions crossed), or withheld by the gateway: never pushed, recipient online
 * now. Pushed by the sweep, but not to a session that must first prove its address
 * (PLAIN_SESSIONS): a classic push there would be withheld, and its first proof pushes them.
 */
export async function takeStrandedForOnline(q: Queryable, cluster: string, olderThan: Date, nextPushAt: Date, limit: number): Promise<Due[]> {
  const r = await q.query<MessageRow & { gateway: string; addr: string; cap_ack: boolean }>(
    `WITH stranded AS (
       SELECT m.id, s.gateway, s.addr, s.cap_ack FROM sessions s
         JOIN messages m ON m.recipient = s.user_name AND NOT m.delivered AND m.push_attempts = 0 AND m.sent_at < $1
        WHERE s.cluster = $4 AND (s.proven OR s.plain_ok)
        LIMIT $3 FOR UPDATE OF m SKIP LOCKED
     )
     , upd AS (
       UPDATE messages m SET push_attempts = 1, delivered = NOT st.cap_ack,
         next_push_at = CASE WHEN st.cap_ack THEN $2::timestamptz ELSE NULL END
         FROM stranded st WHERE m.id = st.id
       RETURNING ${STATE_COLS}, st.gateway, st.addr, st.cap_ack
     ), sf AS (${STATE_FRAMES("upd", "x.replicated AND x.delivered")})
     SELECT * FROM upd`,
    [olderThan, nextPushAt, limit, cluster],
  );
  return r.rows.map((row) => ({ ...toMessage(row), gateway: row.gateway, addr: row.addr, attempts: 1 }));
}

/** This cluster's sessions not heard from since heardBefore; another cluster expires its own. */
export async function expireSessions(q: Queryable, cluster: string, heardBefore: Date): Promise<Session[]> {
  const r = await q.query<SessionRow>(`DELETE FROM sessions WHERE cluster = $2 AND last_heard < $1 RETURNING ${SESSION_COLS}`, [heardBefore, cluster]);
  return r.rows.map(toSession);
}

/**
 * Undelivered messages of each named recipient (its box), counted up to `limit` at most: a box
 * at its limit is full whatever else it holds, and the count's cost stays bounded.
 */
export async function boxSizes(q: Queryable, names: string[], limit: number): Promise<Map<string, number>> {
  if (names.length === 0) return new Map();
  const r = await q.query<{ name: string; n: number }>(
    `SELECT u.name, (SELECT count(*)::int FROM (SELECT 1 FROM messages m WHERE m.recipient = u.name AND NOT m.delivered LIMIT $2) x) AS n
       FROM unnest($1::text[]) AS u(name)`,
    [names, limit],
  );
  return new Map(r.rows.map((x) => [x.name, Number(x.n)]));
}
