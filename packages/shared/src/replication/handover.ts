/**
 * Hand-over of messages to the other clusters: undelivered messages that only this cluster
 * has (never replicated: they were for a session held here) and whose recipient's session is
 * now held by another cluster become `replicated` and are written to the outbox as
 * `message.new` for every peer, so the cluster that holds the session pushes them
 * (docs/peer-protocol.md). peer-sync does it when a session.up moves a user away; the routers'
 * sweep does it for a SEND that raced that move (its transaction had seen the session here).
 */
import type { Queryable } from "../db/db.ts";
import { enqueueFramesFromRows, messageNewFromRow } from "./sql-frames.ts";

export type HandOverScope =
  /** This user's messages (their session just moved). */
  | { user: string }
  /** Every message sent before `sentBefore` whose recipient's session another cluster holds. */
  | { cluster: string; sentBefore: Date; limit: number };

export async function handOverUndelivered(q: Queryable, scope: HandOverScope): Promise<number> {
  const [where, params] =
    "user" in scope
      ? ["m.recipient = $1", [scope.user]]
      : [
          `m.id IN (SELECT x.id FROM messages x JOIN sessions s ON s.user_name = x.recipient AND s.cluster <> $1
             WHERE NOT x.delivered AND NOT x.replicated AND x.sent_at < $2 ORDER BY x.sent_at, x.seq LIMIT $3 FOR UPDATE OF x SKIP LOCKED)`,
          [scope.cluster, scope.sentBefore, scope.limit],
        ];
  return enqueueFramesFromRows(
    q,
    {
      with: `h AS (
        UPDATE messages m SET replicated = true, next_push_at = NULL WHERE ${where} AND NOT m.delivered AND NOT m.replicated
        RETURNING m.id, m.sent_at, m.seq, m.sender, m.recipient, m.body
      )`,
      kind: "message.new",
      payload: messageNewFromRow(),
      from: "h",
      orderBy: "sent_at, seq, id",
    },
    params,
  );
}
