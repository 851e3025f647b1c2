/**
 * The frame kinds of Update Messages and routing (docs/peer-protocol.md): `message.new` (a
 * message not delivered where it was sent: to every peer), `message.state` (delivered, read or
 * deleted somewhere: to every peer) and `broadcast` (`ALL`: pushed to each cluster's own
 * sessions, never stored). The routers write them; these handlers run in the receiver's batch
 * transaction and are idempotent.
 *
 * Pushes: peer-sync has no bus. A message for a session held here gets `next_push_at = now`,
 * so the routers' resend ticker (every 100 ms or less) pushes it with the usual delivery rules
 * (classic session: delivered on push; CAP ACK: resent until ACK). A broadcast line goes
 * through pending_pushes, which the routers publish.
 */
import { z } from "zod";
import type { Queryable } from "@pesan/shared/db";
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

/**
 * Inserts a copy unless it exists, was deleted (tombstone), or its recipient is not known here.
 * If the recipient's session is held here the first push is due now (the routers push it).
 */
async function insertCopy(tx: Queryable, ctx: ApplyContext, m: MessageNew, state: { delivered: boolean; read: boolean }): Promise<void> {
  await tx.query(
    `INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, read, push_attempts, next_push_at, replicated)
     SELECT $1::text, $2::timestamptz, $3::text, $4::text, $5::text, $6::boolean, $7::boolean, 0,
       CASE WHEN NOT $6::boolean AND EXISTS (SELECT 1 FROM sessions WHERE user_name = $4::text AND cluster = $8::text AND gateway <> '') THEN $9::timestamptz ELSE NULL END, true
      WHERE EXISTS (SELECT 1 FROM users WHERE name = $4::text) AND NOT EXISTS (SELECT 1 FROM message_tombstones WHERE id = $1::text)
     ON CONFLICT (id) DO NOTHING`,
    [m.id, new Date(m.sentAt), m.sender, m.recipient, m.body, state.delivered, state.read, ctx.self, ctx.now],
  );
}

async function applyMessageNew(tx: Queryable, ctx: ApplyContext, d: MessageNew): Promise<void> {
  await insertCopy(tx, ctx, d, { delivered: false, read: false });
}

async function applyMessageState(tx: Queryable, ctx: ApplyContext, d: MessageState): Promise<void> {
  if ("deleted" in d) {
    // Deleted stays deleted: the tombstone stops a late message.new or message.state.
    await tx.query("INSERT INTO message_tombstones (id, deleted_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", [d.id, ctx.now]);
    await tx.query("DELETE FROM messages WHERE id = $1 AND recipient = $2", [d.id, d.recipient]);
    return;
  }
  const r = await tx.query<{ delivered: boolean; read: boolean }>("SELECT delivered, read FROM messages WHERE id = $1 AND recipient = $2 FOR UPDATE", [d.id, d.recipient]);
  const cur = r.rows[0];
  if (!cur) {
    // The state came before the message itself (another link was faster): the copy starts in it.
    await insertCopy(tx, ctx, d, mergeState({ delivered: false, read: false }, d));
    return;
  }
  const next = mergeState(cur, d);
  if (next.delivered === cur.delivered && next.read === cur.read) return;
  // Delivered elsewhere: no more pushes or resends of this copy.
  await tx.query("UPDATE messages SET delivered = $3::boolean, read = $4::boolean, next_push_at = CASE WHEN $3::boolean THEN NULL ELSE next_push_at END WHERE id = $1 AND recipient = $2", [
    d.id,
    d.recipient,
    next.delivered,
    next.read,
  ]);
}

async function applyBroadcast(tx: Queryable, ctx: ApplyContext, d: BroadcastFrame): Promise<void> {
  const sentAt = new Date(d.sentAt);
  if (!isFreshBroadcast(sentAt, ctx.now)) return;
  await tx.query(
    "INSERT INTO pending_pushes (gateway, addr, line) SELECT gateway, addr, $1::text FROM sessions WHERE cluster = $2 AND gateway <> '' AND user_name <> $3 ORDER BY user_name",
    [formatMsg(d.id, `*${d.sender}`, sentAt, d.body), ctx.self, d.sender],
  );
}

export const MESSAGE_KINDS = {
  "message.new": { schema: messageNew, apply: applyMessageNew } satisfies FrameKind<MessageNew>,
  "message.state": { schema: messageState, apply: applyMessageState } satisfies FrameKind<MessageState>,
  broadcast: { schema: broadcastFrame, apply: applyBroadcast } satisfies FrameKind<BroadcastFrame>,
};
