/**
 * The frame kinds of Update Messages and routing (docs/peer-protocol.md): `message.new` (a
 * message not delivered where it was sent: to every peer), `message.state` (delivered, read or
 * deleted somewhere: to every peer) and `broadcast` (`ALL`: pushed to each cluster's own
 * sessions, never stored). The routers write them; these handlers run in the receiver's batch
 * transaction and are idempotent.
 *
 * Pushes: peer-sync has no bus. A message for a session held here gets `next_push_at = now`,
 * so the routers' resend ticker pushes it with the usual delivery rules (classic session:
 * delivered on push; CAP ACK: resent until ACK). A broadcast line goes through pending_pushes,
 * which the routers publish. Either wakes the routers with a NOTIFY (CHANNELS.pushes).
 */
import { CHANNELS, type Queryable } from "@pesan/shared/db";
import { sqlIsProbeName } from "@pesan/shared/names";
import { formatMsg, isSameSend, isSessionSendId } from "@pesan/shared/protocol";
import { enqueueFrames } from "@pesan/shared/replication";
import type { ApplyContext, FrameKind } from "./frame-kind.ts";
import { inIdSpace } from "./ownership.ts";

// The payload schemas are @pesan/shared/replication's (the routers write these kinds).
import { broadcastFrame, messageNew, messageState, type BroadcastFrame, type MessageNew, type MessageState } from "@pesan/shared/replication";
export { broadcastFrame, messageNew, messageState };
export type { BroadcastFrame, MessageNew, MessageState };

/** A broadcast older than this when it arrives (its peer was DOWN meanwhile) is dropped: `ALL` is for who is online now. */
export const BROADCAST_MAX_AGE_MS = 60_000;

export function isFreshBroadcast(sentAt: Date, now: Date, maxAgeMs = BROADCAST_MAX_AGE_MS): boolean {
  return now.getTime() - sentAt.getTime() <= maxAgeMs;
}

/** States only move forward: once delivered (or read) a copy never becomes undelivered (unread) again. */
export function mergeState(cur: { delivered: boolean; read: boolean }, incoming: { delivered: boolean; read: boolean }): { delivered: boolean; read: boolean } {
  const read = cur.read || incoming.read;
  return { delivered: cur.delivered || incoming.delivered || read, read };
}

interface Copy extends MessageNew {
  delivered: boolean;
  read: boolean;
}

/**
 * Inserts copies unless they exist, were deleted (tombstone), or their recipient is not known
 * here; a copy that exists takes the merged state (only forward). Every copy whose recipient's
 * session is held here and which is still undelivered is due for its first push now (the
 * routers push it). One statement for the whole run; ids are unique in it (callers merge).
 */
async function upsertCopies(tx: Queryable, ctx: ApplyContext, copies: Copy[], onExisting: "merge" | "origin" | "keep"): Promise<void> {
  if (copies.length === 0) return;
  // One JSON parameter, unpacked by Postgres: cheaper than seven arrays that the driver
  // escapes element by element (the copies are already plain JSON-shaped objects).
  await tx.query(
    `INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, read, push_attempts, next_push_at, replicated)
     SELECT f.id, f."sentAt", f.sender, f.recipient, f.body, f.delivered, f.read, 0,
       CASE WHEN NOT f.delivered AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_name = f.recipient AND s.cluster = $2::text AND s.gateway <> '') THEN $3::timestamptz ELSE NULL END, true
       FROM json_to_recordset($1::json) AS f(id text, "sentAt" timestamptz, sender text, recipient text, body text, delivered boolean, read boolean)
      WHERE EXISTS (SELECT 1 FROM users u WHERE u.name = f.recipient) AND NOT EXISTS (SELECT 1 FROM message_tombstones t WHERE t.id = f.id)
     ON CONFLICT (id) DO ${
       onExisting === "keep"
         ? // A tagged SEND's id (sessionSendId) has no origin cluster to say what it is: the
           // copy here stays as it is (applySessionSends looked at it first; this is a race).
           "NOTHING"
         : onExisting === "merge"
         ? // Delivered elsewhere: no more pushes or resends of this copy.
           `UPDATE SET delivered = messages.delivered OR EXCLUDED.delivered OR EXCLUDED.read, read = messages.read OR EXCLUDED.read,
            next_push_at = CASE WHEN EXCLUDED.delivered OR EXCLUDED.read THEN NULL ELSE messages.next_push_at END
          WHERE messages.recipient = EXCLUDED.recipient AND ((EXCLUDED.delivered AND NOT messages.delivered) OR (EXCLUDED.read AND NOT messages.read))`
         : // The id's own cluster says what the message is. A copy that says otherwise came from
           // a message.state of a third cluster claiming the id before it existed (the state of
           // a real message carries the same content): it is replaced, state and all. The same
           // content is this message seen before: nothing changes (the usual re-send).
           `UPDATE SET sent_at = EXCLUDED.sent_at, sender = EXCLUDED.sender, recipient = EXCLUDED.recipient, body = EXCLUDED.body,
            delivered = false, read = false, push_attempts = 0, next_push_at = EXCLUDED.next_push_at
          WHERE (messages.sent_at, messages.sender, messages.recipient, messages.body) IS DISTINCT FROM (EXCLUDED.sent_at, EXCLUDED.sender, EXCLUDED.recipient, EXCLUDED.body)`
     }`,
    [JSON.stringify(copies.map((c) => ({ id: c.id, sentAt: c.sentAt, sender: c.sender, recipient: c.recipient, body: c.body, delivered: c.delivered, read: c.read }))), ctx.self, ctx.now],
  );
  // Wakes the routers: a push due now does not wait for their next poll.
  if (copies.some((c) => !c.delivered)) await tx.query("SELECT pg_notify($1, '')", [CHANNELS.pushes]);
}

/**
 * Frames whose id is in the sender's own id space; the others are ignored. A cluster makes
 * messages only with its own prefix (and hands over, bootstraps and broadcasts only those),
 * so another prefix is a peer claiming ids of another cluster: with ON CONFLICT DO NOTHING its
 * copy would make that cluster's later message of the same id vanish here.
 */
function fromItsOrigin<T extends { id: string }>(ctx: ApplyContext, kind: string, run: T[], sessionIds = false): T[] {
  return run.filter((m) => {
    if (inIdSpace(m.id, ctx.peer) || (sessionIds && isSessionSendId(m.id))) return true;
    ctx.ignore(kind, "foreign_id", { id: m.id });
    return false;
  });
}

async function applyMessageNew(tx: Queryable, ctx: ApplyContext, run: MessageNew[]): Promise<void> {
  // Ids are unique in one statement: a repeated id in a run is the same message (its origin
  // sent it twice), so the first one stands for both.
  const seen = new Set<string>();
  const copies = fromItsOrigin(ctx, "message.new", run, true)
    .filter((m) => !seen.has(m.id) && seen.add(m.id))
    .map((m) => ({ ...m, delivered: false, read: false }));
  await upsertCopies(tx, ctx, copies.filter((c) => !isSessionSendId(c.id)), "origin");
  await applySessionSends(tx, ctx, copies.filter((c) => isSessionSendId(c.id)));
}

/**
 * message.new of tagged SENDs (ids from sessionSendId, docs/peer-protocol.md "Exactly-once
 * SEND across clusters"): the id is the session's and tag's, not a cluster's, so two clusters
 * may have stored the same send (the client's retry after its first cluster died unanswered)
 * and any peer may send it. Nothing here is ever replaced by such a frame: a copy not here is
 * inserted (as any message.new), one here with the same sender, recipient and text is this
 * send, which stays as it is (no second push), and one with other content keeps its id (the
 * frame is ignored, `taken_id`). A copy of the same send that never left this cluster (stored
 * here from the retry and pushed here) is now held by a peer too: it becomes `replicated`, and
 * its state so far goes to the peers (message.state), so the other copy converges by id.
 */
async function applySessionSends(tx: Queryable, ctx: ApplyContext, copies: Copy[]): Promise<void> {
  if (copies.length === 0) return;
  const r = await tx.query<{ id: string; sender: string; recipient: string; body: string; sent_at: Date | string; delivered: boolean; read: boolean; replicated: boolean }>(
    "SELECT id, sender, recipient, body, sent_at, delivered, read, replicated FROM messages WHERE id = ANY($1::text[]) FOR UPDATE",
    [copies.map((c) => c.id)],
  );
  const here = new Map(r.rows.map((x) => [x.id, x]));
  const fresh: Copy[] = [];
  const kept: typeof r.rows = [];
  for (const c of copies) {
    const h = here.get(c.id);
    if (h === undefined) fresh.push(c);
    // The same send by the router's rule (isSameSend), without its 60 s window: that bounds
    // when a client's retry comes, not when a peer's copy does (a link down for an hour
    // delivers its backlog then), and a copy here that is this send stays as it is anyway.
    else if (isSameSend(h, c)) kept.push(h);
    else ctx.ignore("message.new", "taken_id", { id: c.id });
  }
  await upsertCopies(tx, ctx, fresh, "keep");
  const gone = kept.filter((h) => !h.replicated);
  if (gone.length === 0) return;
  await tx.query("UPDATE messages SET replicated = true WHERE id = ANY($1::text[])", [gone.map((h) => h.id)]);
  await enqueueFrames(
    tx,
    gone
      .filter((h) => h.delivered || h.read)
      .map((h) => ({
        kind: "message.state" as const,
        payload: { id: h.id, recipient: h.recipient, sender: h.sender, sentAt: new Date(h.sent_at).toISOString(), body: h.body, delivered: h.delivered, read: h.read },
      })),
  );
}

/**
 * A message of this cluster's id space may change only if this cluster gave it away: it is
 * here, `replicated` (sent to every peer as message.new, so any of them may deliver, read or
 * delete it for its recipient), and the frame names its recipient. One that never left (pushed
 * at once to a session held here) no peer has; one not here is not made by a peer's frame
 * (that would claim an id this cluster's routers have yet to make).
 */
async function heldByPeers(tx: Queryable, ctx: ApplyContext, run: MessageState[]): Promise<MessageState[]> {
  const asked = [...new Set(run.filter((d) => inIdSpace(d.id, ctx.self) || isSessionSendId(d.id)).map((d) => d.id))];
  if (asked.length === 0) return run;
  const r = await tx.query<{ id: string; recipient: string; replicated: boolean }>("SELECT id, recipient, replicated FROM messages WHERE id = ANY($1::text[])", [asked]);
  const here = new Map(r.rows.map((x) => [x.id, x]));
  return run.filter((d) => {
    const h = here.get(d.id);
    const given = h !== undefined && h.replicated && h.recipient === d.recipient;
    // A tagged SEND's copy (`t.`) that is here is this cluster's as an id of its own space is:
    // it changes only if it left (replicated). One not here may be made from the state, as a
    // copy of another cluster's id: any cluster may have stored that send.
    const allowed = inIdSpace(d.id, ctx.self) ? given : isSessionSendId(d.id) ? h === undefined || given : true;
    if (allowed) return true;
    ctx.ignore("message.state", "not_held", { id: d.id, ...("deleted" in d ? { change: "deleted" } : {}) });
    return false;
  });
}

/**
 * The net effect of a run of message.state frames, in one pass: deleted wins over any other
 * state whatever the order (a tombstone stops a later state, and a delete removes an earlier
 * one), and the other states merge (mergeState is commutative). So: one upsert, then deletes.
 */
export function foldStates(run: MessageState[]): { states: Copy[]; deletes: Array<{ id: string; recipient: string }> } {
  const deleted = new Map<string, string>();
  const states = new Map<string, Copy>();
  for (const d of run) {
    if ("deleted" in d) {
      deleted.set(d.id, d.recipient);
      continue;
    }
    const cur = states.get(d.id);
    states.set(d.id, cur ? { ...cur, ...mergeState(cur, d) } : { ...d, ...mergeState({ delivered: false, read: false }, d) });
  }
  return { states: [...states.values()].filter((c) => !deleted.has(c.id)), deletes: [...deleted].map(([id, recipient]) => ({ id, recipient })) };
}

async function applyMessageState(tx: Queryable, ctx: ApplyContext, run: MessageState[]): Promise<void> {
  const { states, deletes } = foldStates(await heldByPeers(tx, ctx, run));
  // The state may come before the message itself (another link was faster): the copy starts in it.
  await upsertCopies(tx, ctx, states, "merge");
  if (deletes.length === 0) return;
  // Deleted stays deleted: the tombstone stops a late message.new or message.state.
  await tx.query("INSERT INTO message_tombstones (id, deleted_at) SELECT id, $2 FROM unnest($1::text[]) AS t(id) ON CONFLICT (id) DO NOTHING", [deletes.map((d) => d.id), ctx.now]);
  await tx.query("DELETE FROM messages m USING unnest($1::text[], $2::text[]) AS d(id, recipient) WHERE m.id = d.id AND m.recipient = d.recipient", [
    deletes.map((d) => d.id),
    deletes.map((d) => d.recipient),
  ]);
}

async function applyBroadcast(tx: Queryable, ctx: ApplyContext, run: BroadcastFrame[]): Promise<void> {
  for (const d of fromItsOrigin(ctx, "broadcast", run)) {
    const sentAt = new Date(d.sentAt);
    if (!isFreshBroadcast(sentAt, ctx.now)) continue;
    await tx.query(
      // Not to probe accounts: they are no users (@pesan/shared/names isProbeName), and the sender's ALL did not count them.
      `INSERT INTO pending_pushes (gateway, addr, line) SELECT gateway, addr, $1::text FROM sessions
        WHERE cluster = $2 AND gateway <> '' AND user_name <> $3 AND NOT ${sqlIsProbeName("user_name")} ORDER BY user_name`,
      [formatMsg(d.id, `*${d.sender}`, sentAt, d.body), ctx.self, d.sender],
    );
  }
}

export const MESSAGE_KINDS = {
  "message.new": { schema: messageNew, applyRun: applyMessageNew } satisfies FrameKind<MessageNew>,
  "message.state": { schema: messageState, applyRun: applyMessageState } satisfies FrameKind<MessageState>,
  broadcast: { schema: broadcastFrame, applyRun: applyBroadcast } satisfies FrameKind<BroadcastFrame>,
};
