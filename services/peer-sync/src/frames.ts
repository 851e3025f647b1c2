/**
 * The bodies of the peer protocol, version 1 (docs/peer-protocol.md), validated with zod.
 * Control requests (announce, hello) have their own paths; replicated state travels as typed
 * frames in batches on /v1/frames, each kind with its own schema and idempotent apply handler.
 */
import { z } from "zod";
import { CLUSTER_NAME_RE, HOST_PORT_RE } from "@pesan/shared/names";
import { CONNECTED_KINDS, USER_KINDS } from "./kinds.ts";
import type { FrameKinds } from "./frame-kind.ts";
import { MESSAGE_KINDS } from "./message-kinds.ts";
import { MEMBER_KINDS } from "./membership/kinds.ts";

export const PROTOCOL_VERSION = 1;
export const PATHS = { announce: "/v1/announce", hello: "/v1/hello", frames: "/v1/frames" } as const;

const name = z.string().regex(CLUSTER_NAME_RE);
/** The shape only, no port range: what v1 has always accepted from a peer (tightening it could refuse a live peer). */
const address = z.string().regex(HOST_PORT_RE);
const count = z.number().int().min(0).max(1_000_000_000);
/** A bigint position as a decimal string (JSON numbers lose precision past 2^53). */
const position = z.string().regex(/^\d{1,20}$/);

/** What a server says about itself: in announce and hello, and in every answer to them. */
export const serverStatus = z.object({
  name,
  address,
  syncUrl: z.string().max(2048),
  quota: count,
  online: count,
  /** Its database's identity (peer_self.epoch): a new one means it was recreated. Optional (added within v1). */
  epoch: z.string().min(1).max(64).optional(),
  /** Its X25519 public key (membership/keys.ts), handed on to clusters that join. Optional (added within v1). */
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/).optional(),
});
export type ServerStatus = z.infer<typeof serverStatus>;

export const announceBody = z.object({ v: z.literal(PROTOCOL_VERSION), kind: z.literal("announce"), server: serverStatus });
export const helloBody = z.object({ v: z.literal(PROTOCOL_VERSION), kind: z.literal("hello"), server: serverStatus });
export const statusReply = z.object({ v: z.literal(PROTOCOL_VERSION), kind: z.literal("status"), server: serverStatus });
export type AnnounceBody = z.infer<typeof announceBody>;
export type HelloBody = z.infer<typeof helloBody>;
export type StatusReply = z.infer<typeof statusReply>;

/** An outbox position: the writing transaction's id, then the row id (see 002_peer_sync.sql). */
export const outboxPosition = z.object({ txid: position, id: position });
export type OutboxPosition = z.infer<typeof outboxPosition>;

export const frame = outboxPosition.extend({ kind: z.string().regex(/^[a-z][a-z0-9_.]{0,31}$/), data: z.unknown() });
export type Frame = z.infer<typeof frame>;

export const framesBody = z.object({
  v: z.literal(PROTOCOL_VERSION),
  kind: z.literal("frames"),
  /** The sender database's identity; positions are only comparable within one epoch. */
  epoch: z.string().min(1).max(64),
  frames: z.array(frame).min(1).max(10_000),
});
export type FramesBody = z.infer<typeof framesBody>;

/** The receiver has applied (or already had) everything up to and including `upTo`. */
export const framesAck = z.object({ v: z.literal(PROTOCOL_VERSION), kind: z.literal("ack"), upTo: outboxPosition });
export type FramesAck = z.infer<typeof framesAck>;

// The kind contract lives in frame-kind.ts, which kinds.ts and message-kinds.ts import: this
// file imports them for FRAME_KINDS, so they must not import it back.
export { oneByOne, type ApplyContext, type FrameKind, type FrameKinds, type Validator } from "./frame-kind.ts";

/** Update User and Update Connected (kinds.ts), Update Messages and routing (message-kinds.ts), membership (membership/kinds.ts). */
export const FRAME_KINDS: FrameKinds = { ...USER_KINDS, ...CONNECTED_KINDS, ...MESSAGE_KINDS, ...MEMBER_KINDS };

export function comparePositions(a: OutboxPosition, b: OutboxPosition): number {
  const d = BigInt(a.txid) - BigInt(b.txid);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(a.id) - BigInt(b.id);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

export const ZERO_POSITION: OutboxPosition = { txid: "0", id: "0" };

/** A body that is well signed but not acceptable (a kind we do not know, a name that is not the sender's). */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}
