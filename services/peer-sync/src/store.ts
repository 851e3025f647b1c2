/**
 * peer-sync's SQL. server_list rows of peers are written here; the row with is_self belongs to
 * the routers and is never touched (every statement says `NOT is_self`).
 */
import type { Queryable } from "@pesan/shared/db";
import { sqlIsProbeName } from "@pesan/shared/names";
import { enqueueFramesFromRows, messageNewFromRow, sqlInstant, sqlText } from "@pesan/shared/replication";
import type { ReplayGuard } from "./auth.ts";
import type { PeerConfig } from "./config.ts";
import type { OutboxPosition, ServerStatus } from "./frames.ts";

/**
 * Configured peers into server_list (address until they announce one, key, sync URL, rank),
 * and a peer_links row each. Members (joined by invite, migration 014) keep theirs. A peer no
 * longer configured loses its link row: its cursors mean nothing once the outbox was pruned
 * without it, and if it is configured again it is bootstrapped like a new peer. (With no peers
 * left, the routers stop writing frames.)
 */
export async function seedPeers(q: Queryable, peers: PeerConfig[]): Promise<void> {
  await forgetStrayLinks(q, peers.map((p) => p.name));
  for (const p of peers) {
    await q.query(
      `INSERT INTO server_list (name, address, active, access_key, proximity, sync_url) VALUES ($1, $2, false, $3, $4, $5)
       ON CONFLICT (name) DO UPDATE SET access_key = EXCLUDED.access_key, proximity = EXCLUDED.proximity, sync_url = EXCLUDED.sync_url
       WHERE NOT server_list.is_self`,
      [p.name, p.address, p.key, p.proximity, p.syncUrl],
    );
    await q.query("INSERT INTO peer_links (peer) VALUES ($1) ON CONFLICT DO NOTHING", [p.name]);
  }
}

/**
 * Drops the peer_links rows of clusters that are neither configured (`staticPeers`) nor an
 * active member (peer_members, read in the same statement: a member's row and its link row are
 * written in one transaction, so a join committing meanwhile is seen whole or not at all).
 * Such a row pins the outbox (pruneOutbox keeps what its cursor has not passed): a peer taken
 * out of PEERS, or a revoked member whose last request in flight made its row again
 * (lockInbound). Returns how many went.
 */
export async function forgetStrayLinks(q: Queryable, staticPeers: readonly string[]): Promise<number> {
  const r = await q.query(
    `DELETE FROM peer_links l WHERE NOT (l.peer = ANY($1::text[]))
       AND NOT EXISTS (SELECT 1 FROM peer_members m WHERE m.name = l.peer AND m.revoked_at IS NULL)`,
    [staticPeers],
  );
  return r.rowCount;
}

/**
 * Records the epoch a peer reports. A different one than before means its database was
 * recreated: its bootstrap is due again (true). The first one ever is just recorded.
 */
export async function notePeerEpoch(q: Queryable, peer: string, epoch: string): Promise<boolean> {
  const r = await q.query<{ due: boolean }>(
    `UPDATE peer_links l SET peer_epoch = $2, bootstrapped_at = CASE WHEN l.peer_epoch IS NOT NULL THEN NULL ELSE l.bootstrapped_at END
      WHERE l.peer = $1 AND l.peer_epoch IS DISTINCT FROM $2
      RETURNING l.bootstrapped_at IS NULL AS due`,
    [peer, epoch],
  );
  return r.rows[0]?.due === true;
}

/** Configured peers not yet sent what this cluster had before the link existed. */
export async function peersToBootstrap(q: Queryable, peers: string[]): Promise<string[]> {
  const r = await q.query<{ peer: string }>("SELECT peer FROM peer_links WHERE peer = ANY($1::text[]) AND bootstrapped_at IS NULL ORDER BY peer", [peers]);
  return r.rows.map((x) => x.peer);
}

/**
 * A new link's catch-up, in one transaction, as frames for that peer only (`target`): every
 * account whose home is this cluster (`user.register`), and every undelivered message this
 * cluster took from its own clients, and every undelivered tagged SEND's (a `t.` id is no
 * cluster's: any may pass it on, docs/peer-protocol.md) (`message.new`; they become `replicated`, so their state
 * is sent on from now on). Applying them is idempotent, so a peer that already had some of it
 * loses nothing. Sessions follow with the next snapshot. Returns what was queued, or
 * undefined when it was done already.
 */
export async function bootstrapPeer(tx: Queryable, peer: string, self: string, now: Date): Promise<{ users: number; messages: number } | undefined> {
  // Claimed first: of two bootstraps racing for one peer, the second finds it done.
  const claim = await tx.query("UPDATE peer_links SET bootstrapped_at = $2 WHERE peer = $1 AND bootstrapped_at IS NULL", [peer, now]);
  if (claim.rowCount === 0) return undefined;
  const users = await enqueueFramesFromRows(
    tx,
    {
      kind: "user.register",
      payload: { name: sqlText("name"), passHash: sqlText("pass_hash"), createdAt: sqlInstant("created_at"), home: sqlText("home_cluster") },
      from: "users WHERE home_cluster = $1",
      orderBy: "created_at, name",
      target: "$2",
    },
    [self, peer],
  );
  const messages = await enqueueFramesFromRows(
    tx,
    {
      with: `m AS (
        UPDATE messages SET replicated = true WHERE NOT delivered AND (starts_with(id, $1 || ':') OR starts_with(id, 't.'))
        RETURNING id, sent_at, seq, sender, recipient, body
      )`,
      kind: "message.new",
      payload: messageNewFromRow(),
      from: "m",
      orderBy: "sent_at, seq, id",
      target: "$2",
    },
    [self, peer],
  );
  return { users, messages };
}

/** This cluster's online count (its own users' sessions, as the routers count for QUOTA: no probe accounts) and quota (from the routers' own row). */
export async function localLoad(q: Queryable, self: string): Promise<{ online: number; quota: number }> {
  const r = await q.query<{ online: number; quota: number | null }>(
    `SELECT (SELECT count(*)::int FROM sessions WHERE cluster = $1 AND NOT ${sqlIsProbeName("user_name")}) AS online,
            (SELECT quota FROM server_list WHERE name = $1 AND is_self) AS quota`,
    [self],
  );
  return { online: r.rows[0]?.online ?? 0, quota: r.rows[0]?.quota ?? 0 };
}

/**
 * The peer answered: UP with what it says of itself. Proximity stays ours (config order), and
 * so does the round trip (rtt.ts), when our own check measured one: an announce received
 * (applyAnnounce) measures nothing and keeps the last value.
 */
export async function markUp(q: Queryable, peer: string, s: ServerStatus, proximity: number, now: Date, rttMs?: number): Promise<void> {
  await q.query(
    `INSERT INTO server_list (name, address, active, proximity, quota, online, last_seen, rtt_ms) VALUES ($1, $2, true, $3, $4, $5, $6, $7)
     ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, active = true, proximity = EXCLUDED.proximity, quota = EXCLUDED.quota,
       online = EXCLUDED.online, last_seen = EXCLUDED.last_seen, rtt_ms = COALESCE(EXCLUDED.rtt_ms, server_list.rtt_ms)
     WHERE NOT server_list.is_self`,
    [peer, s.address, proximity, s.quota, s.online, now, rttMs ?? null],
  );
}

/** Nobody can reach that cluster's users through us any more: online 0 until it is back (its rtt_ms stays: the last distance measured). */
export async function markDown(q: Queryable, peer: string): Promise<void> {
  await q.query("UPDATE server_list SET active = false, online = 0 WHERE name = $1 AND NOT is_self", [peer]);
}

/**
 * The peer just went DOWN: its clients we know an address of get `REDIRECT <our address>`
 * (through pending_pushes; a router sends it from one of our gateways), so they move now
 * rather than after their heartbeat timeout. Only one survivor does it, the one whose name
 * is first among the clusters still UP, so a client is not sent two ways. Returns how many.
 */
export async function redirectClientsOf(q: Queryable, peer: string, self: string, selfAddress: string): Promise<number> {
  const r = await q.query(
    `INSERT INTO pending_pushes (gateway, addr, line)
     SELECT '', s.reach, $4 FROM sessions s
      WHERE s.cluster = $1 AND s.reach <> ''
        AND $2 = (SELECT min(name) FROM server_list WHERE (active OR name = $2) AND name <> $1)
      ORDER BY s.user_name
      LIMIT $3`,
    [peer, self, MAX_REDIRECTS, `REDIRECT ${selfAddress}`],
  );
  return r.rowCount;
}

/** Bounds one DOWN's burst of REDIRECT datagrams; past it, the clients' own heartbeats move them. */
const MAX_REDIRECTS = 100_000;

/** An announce: the peer is alive and says where its clients connect. Idempotent. */
export async function applyAnnounce(q: Queryable, peer: string, s: ServerStatus, proximity: number, now: Date): Promise<void> {
  await markUp(q, peer, s, proximity, now);
}

/**
 * A hello received: the peer's own news (load, address), but not its liveness: only our own
 * checks decide UP/DOWN, or a one-way failure would leave a peer UP that we cannot reach.
 */
export async function applyHello(q: Queryable, peer: string, s: ServerStatus, now: Date): Promise<void> {
  await q.query("UPDATE server_list SET address = $2, quota = $3, online = $4, last_seen = $5 WHERE name = $1 AND active AND NOT is_self", [
    peer,
    s.address,
    s.quota,
    s.online,
    now,
  ]);
}

/** Replay protection that survives restarts: a nonce is accepted once per peer. */
export class PgReplayGuard implements ReplayGuard {
  private readonly db: Queryable;

  constructor(db: Queryable) {
    this.db = db;
  }

  async firstUse(peer: string, nonce: string, expiresAt: Date, tx?: Queryable): Promise<boolean> {
    const r = await (tx ?? this.db).query("INSERT INTO peer_nonces (peer, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [peer, nonce, expiresAt]);
    return r.rowCount === 1;
  }

  async prune(now: Date): Promise<void> {
    await this.db.query("DELETE FROM peer_nonces WHERE expires_at < $1", [now]);
  }
}

// --- outbox (frames to peers) -----------------------------------------------------------

export interface OutboxRow extends OutboxPosition {
  kind: string;
  data: unknown;
}

export async function epoch(q: Queryable): Promise<string> {
  const r = await q.query<{ epoch: string }>("SELECT epoch FROM peer_self");
  if (!r.rows[0]) throw new Error("peer_self is empty: the 002_peer_sync migration did not run");
  return r.rows[0].epoch;
}

export async function outCursor(q: Queryable, peer: string): Promise<OutboxPosition> {
  const r = await q.query<{ txid: string; id: string }>("SELECT out_txid::text AS txid, out_id::text AS id FROM peer_links WHERE peer = $1", [peer]);
  return r.rows[0] ?? { txid: "0", id: "0" };
}

export async function setOutCursor(q: Queryable, peer: string, upTo: OutboxPosition, now: Date): Promise<void> {
  // Never backwards: a late ack of an older batch must not make us re-send what is acked.
  await q.query(
    `UPDATE peer_links SET out_txid = $2::xid8, out_id = $3::bigint, updated_at = $4
     WHERE peer = $1 AND (out_txid, out_id) < ($2::xid8, $3::bigint)`,
    [peer, upTo.txid, upTo.id, now],
  );
}

/**
 * Rows after the cursor for this peer, in position order, written by transactions that have all
 * ended: any still running could commit a row with a smaller position after we moved past it.
 */
export async function readOutbox(q: Queryable, peer: string, after: OutboxPosition, limit: number): Promise<OutboxRow[]> {
  const r = await q.query<{ txid: string; id: string; kind: string; payload: unknown }>(
    // ORDER BY names the table's columns: the output aliases are text, and "102" < "88".
    `SELECT o.txid::text AS txid, o.id::text AS id, o.kind, o.payload FROM peer_outbox o
     WHERE (o.txid, o.id) > ($2::xid8, $3::bigint) AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
       AND (o.target IS NULL OR o.target = $1)
     ORDER BY o.txid, o.id LIMIT $4`,
    [peer, after.txid, after.id, limit],
  );
  return r.rows.map((x) => ({ txid: x.txid, id: x.id, kind: x.kind, data: x.payload }));
}

/**
 * Per peer: how many outbox rows it has not acknowledged yet (depth) and the age in seconds of
 * the oldest of them (lag; 0 when there are none). A peer that is DOWN keeps growing both.
 */
export async function backlog(q: Queryable, peers: string[]): Promise<Map<string, { depth: number; lagSeconds: number }>> {
  const r = await q.query<{ peer: string; depth: number; lag: number }>(
    `SELECT l.peer, count(o.id)::int AS depth, COALESCE(extract(epoch FROM (clock_timestamp() - min(o.created_at))), 0)::float8 AS lag
       FROM peer_links l LEFT JOIN peer_outbox o ON (o.txid, o.id) > (l.out_txid, l.out_id) AND (o.target IS NULL OR o.target = l.peer)
      WHERE l.peer = ANY($1::text[]) GROUP BY l.peer`,
    [peers],
  );
  return new Map(r.rows.map((x) => [x.peer, { depth: x.depth, lagSeconds: Math.max(0, Number(x.lag)) }]));
}

/** Rows one pruning DELETE takes: a dead peer's dropped backlog can be millions; transactions stay short. */
const PRUNE_BATCH = 10_000;

/**
 * Drops rows every peer_links row's cursor has passed, in batches. The rows, not the links this
 * process holds, say who still needs what: a member being linked again (its key or sync URL
 * changed) is out of peer-sync's map for a moment, and its frames must outlive that. With no
 * peer_links row at all nobody will ever read the outbox: all of it goes (as the routers'
 * retention does, services/router/src/retention.ts).
 */
export async function pruneOutbox(q: Queryable): Promise<number> {
  let total = 0;
  for (;;) {
    // min() over no rows is NULL, and `txid < NULL` keeps everything: the NOT EXISTS says "no peer".
    const r = await q.query(
      `DELETE FROM peer_outbox WHERE id IN (SELECT id FROM peer_outbox
        WHERE NOT EXISTS (SELECT 1 FROM peer_links) OR txid < (SELECT min(out_txid) FROM peer_links) LIMIT $1)`,
      [PRUNE_BATCH],
    );
    total += r.rowCount;
    if (r.rowCount < PRUNE_BATCH) return total;
  }
}

/**
 * A peer DOWN for too long: its cursor jumps to the newest row every transaction of which has
 * ended (a row of a transaction still running stays ahead of it and is sent), so pruneOutbox
 * can drop what it never acknowledged; and it is marked for a bootstrap, which sends it this
 * cluster's accounts and undelivered messages when it is back. True if the cursor moved.
 */
export async function dropBacklog(q: Queryable, peer: string, now: Date): Promise<boolean> {
  const r = await q.query(
    `UPDATE peer_links l SET out_txid = h.txid, out_id = h.id, bootstrapped_at = NULL, updated_at = $2
       FROM (SELECT txid, id FROM peer_outbox WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY txid DESC, id DESC LIMIT 1) h
      WHERE l.peer = $1 AND (l.out_txid, l.out_id) < (h.txid, h.id)`,
    [peer, now],
  );
  return r.rowCount === 1;
}

/**
 * Inbound batches from different peers are applied one at a time. Their handlers read, then
 * write (is there a copy? then insert or update it), and under READ COMMITTED two such
 * transactions racing on one message lose an update: C applies B's message.new while A's
 * message.state(delivered) finds no row yet and its insert then yields to B's, so C's copy
 * stayed undelivered for ever (seen in CI). A transaction lock is cheaper than making every
 * handler race-proof, and one batch is one short transaction.
 */
const INBOUND_LOCK_KEY = 0x7065_7372; // "pesr"

/**
 * The highest position of the peer's outbox applied here, locked for this transaction (and the
 * inbound lock taken), in one round trip; seedPeers made the row, this makes it if a peer's
 * row is missing all the same.
 */
export async function lockInbound(tx: Queryable, peer: string): Promise<{ epoch: string | null } & OutboxPosition> {
  const lock = async () =>
    (
      await tx.query<{ epoch: string | null; txid: string; id: string }>(
        "SELECT in_epoch AS epoch, in_txid::text AS txid, in_id::text AS id FROM peer_links, pg_advisory_xact_lock($2) WHERE peer = $1 FOR UPDATE OF peer_links",
        [peer, INBOUND_LOCK_KEY],
      )
    ).rows[0];
  const row = await lock();
  if (row) return row;
  await tx.query("INSERT INTO peer_links (peer) VALUES ($1) ON CONFLICT DO NOTHING", [peer]);
  return (await lock())!;
}

export async function setInbound(tx: Queryable, peer: string, epochId: string, upTo: OutboxPosition, now: Date): Promise<void> {
  await tx.query("UPDATE peer_links SET in_epoch = $2, in_txid = $3::xid8, in_id = $4::bigint, updated_at = $5 WHERE peer = $1", [
    peer,
    epochId,
    upTo.txid,
    upTo.id,
    now,
  ]);
}

/** Forgets unregistered accounts and deleted messages removed before `before` (user_tombstones, message_tombstones). */
export async function pruneTombstones(q: Queryable, before: Date): Promise<void> {
  await q.query("DELETE FROM user_tombstones WHERE removed_at < $1", [before]);
  await q.query("DELETE FROM message_tombstones WHERE deleted_at < $1", [before]);
}
