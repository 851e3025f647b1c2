/**
 * The writer of peer_outbox rows whose payload is built in TypeScript (peer-sync's pumps send
 * them; see 002_peer_sync.sql). Written in the caller's transaction, so a frame exists if and
 * only if the change does. Frames built in SQL from a set of rows go through sql-frames.ts;
 * nothing outside this folder writes peer_outbox.
 */
import type { Queryable } from "../db/db.ts";
import type { FrameKindName, FramePayloads, OutgoingFrame } from "./payloads.ts";

export async function enqueueFrame<K extends FrameKindName>(q: Queryable, kind: K, payload: FramePayloads[K]): Promise<void> {
  await q.query("INSERT INTO peer_outbox (kind, payload) VALUES ($1, $2::jsonb)", [kind, JSON.stringify(payload)]);
}

/** Several frames in one statement, in order (a router batch's message.new and broadcast frames). */
export async function enqueueFrames(q: Queryable, frames: readonly OutgoingFrame[]): Promise<void> {
  if (frames.length === 0) return;
  await q.query("INSERT INTO peer_outbox (kind, payload) SELECT k, p::jsonb FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(k, p, n) ORDER BY n", [
    frames.map((f) => f.kind),
    frames.map((f) => JSON.stringify(f.payload)),
  ]);
}
