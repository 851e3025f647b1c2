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
import { z } from "zod";
import { CHANNELS, type Queryable } from "@pesan/shared/db";
import { formatMsg } from "@pesan/shared/protocol";
import type { ApplyContext, FrameKind } from "./frames.ts";

const userName = z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/);
const messageId = z.string().regex(/^[A-Za-z0-9_.:-]{1,40}$/);
const instant = z.iso.datetime({ offset: true });
/** The client protocol caps a text at 4,000 bytes; a little room for a peer configured otherwise. */
const body = z.string().max(8192);

export const messageNew = z.object({ id: messageId, sentAt: instant, sender: userName, recipient: userName, body });
export const messageState = z.union([
  z.object({ id: messageId, recipient: userName, deleted: z.literal(true) }),
  z.object({ id: messageId, recipient: userName, sender: userName, sentAt: instant, body, delivered: z.boolean(), read: z.boolean() }),
]);
export const broadcastFrame = z.object({ id: messageId, sentAt: instant, sender: userName, body });
export type MessageNew = z.infer<typeof messageNew>;
export type MessageState = z.infer<typeof messageState>;
export type BroadcastFrame = z.infer<typeof broadcastFrame>;

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
async function upsertCopies(tx: Queryable, ctx: ApplyContext, copies: Copy[], mergeExisting: boolean): Promise<void> {
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
       mergeExisting
         ? // Delivered elsewhere: no more pushes or resends of this copy.
           `UPDATE SET delivered = messages.delivered OR EXCLUDED.delivered OR EXCLUDED.read, read = messages.read OR EXCLUDED.read,
            next_push_at = CASE WHEN EXCLUDED.delivered OR EXCLUDED.read THEN NULL ELSE messages.next_push_at END
          WHERE messages.recipient = EXCLUDED.recipient AND ((EXCLUDED.delivered AND NOT messages.delivered) OR (EXCLUDED.read AND NOT messages.read))`
         : "NOTHING"
     }`,
    [JSON.stringify(copies.map((c) => ({ id: c.id, sentAt: c.sentAt, sender: c.sender, recipient: c.recipient, body: c.body, delivered: c.delivered, read: c.read }))), ctx.self, ctx.now],
  );
  // Wakes the routers: a push due now does not wait for their next poll.
  if (copies.some((c) => !c.delivered)) await tx.query("SELECT pg_notify($1, '')", [CHANNELS.pushes]);
}

async function applyMessageNew(tx: Queryable, ctx: ApplyContext, run: MessageNew[]): Promise<void> {
  // A repeated id in one run changes nothing (DO NOTHING), so no merging is needed.
  await upsertCopies(tx, ctx, run.map((m) => ({ ...m, delivered: false, read: false })), false);
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
  const { states, deletes } = foldStates(run);
  // The state may come before the message itself (another link was faster): the copy starts in it.
  await upsertCopies(tx, ctx, states, true);
  if (deletes.length === 0) return;
  // Deleted stays deleted: the tombstone stops a late message.new or message.state.
  await tx.query("INSERT INTO message_tombstones (id, deleted_at) SELECT id, $2 FROM unnest($1::text[]) AS t(id) ON CONFLICT (id) DO NOTHING", [deletes.map((d) => d.id), ctx.now]);
  await tx.query("DELETE FROM messages m USING unnest($1::text[], $2::text[]) AS d(id, recipient) WHERE m.id = d.id AND m.recipient = d.recipient", [
    deletes.map((d) => d.id),
    deletes.map((d) => d.recipient),
  ]);
}

async function applyBroadcast(tx: Queryable, ctx: ApplyContext, run: BroadcastFrame[]): Promise<void> {
  for (const d of run) {
    const sentAt = new Date(d.sentAt);
    if (!isFreshBroadcast(sentAt, ctx.now)) continue;
    await tx.query(
      "INSERT INTO pending_pushes (gateway, addr, line) SELECT gateway, addr, $1::text FROM sessions WHERE cluster = $2 AND gateway <> '' AND user_name <> $3 ORDER BY user_name",
      [formatMsg(d.id, `*${d.sender}`, sentAt, d.body), ctx.self, d.sender],
    );
  }
}

export const MESSAGE_KINDS = {
  "message.new": { schema: messageNew, applyRun: applyMessageNew } satisfies FrameKind<MessageNew>,
  "message.state": { schema: messageState, applyRun: applyMessageState } satisfies FrameKind<MessageState>,
  broadcast: { schema: broadcastFrame, applyRun: applyBroadcast } satisfies FrameKind<BroadcastFrame>,
};
