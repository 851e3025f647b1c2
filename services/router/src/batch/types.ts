/** What a batch is made of and made with: the router's settings, one datagram in, one line out. */
import type { Db } from "@pesan/shared/db";
import { parseText, SEND_DEDUP_WINDOW_MS, type Parsed, type PlainSessionPolicy, type Request } from "@pesan/shared/protocol";
import type { OutboundLine } from "@pesan/shared/bus";
import type { OutgoingFrame } from "@pesan/shared/replication";
import type { Session } from "../store.ts";

export interface CoreSettings {
  cluster: string;
  publicAddress: string;
  quota: number;
  leaseMs: number;
  resendBaseMs: number;
  inboxLimit: number;
  /** Where sessions may act without proofs (PLAIN_SESSIONS). */
  plainSessions: PlainSessionPolicy;
  /** Most sessions this cluster holds at the addresses of one IP; 0 for no limit. */
  sessionsPerIp: number;
  /** Most undelivered messages one recipient may have (BOX_LIMIT); 0 for no limit. */
  boxLimit: number;
}

export interface CoreDeps {
  db: Db;
  clock: () => Date;
  settings: CoreSettings;
  /** Counts a SEND refused with ERR BOX_FULL (the router's metric). */
  onBoxFull?: () => void;
}

/** One datagram as the router received it. */
export interface Incoming {
  gateway: string;
  addr: string;
  reqId: number;
  text: string;
  /** Unique, deterministic id for a message this request may create: a replayed entry reuses it. */
  msgId: string;
  /** The id of the proof key the gateway verified on this datagram, if it carried a valid proof. */
  proof?: string;
  /** text parsed, once per datagram (parsedOf): the password split, the batch and the metrics all need it. */
  parsed?: Parsed;
}

/** The request in inc, parsed on first use and kept on it. */
export function parsedOf(inc: Incoming): Parsed {
  return (inc.parsed ??= parseText(inc.text));
}

/** The gateway's own notices to the routers start with a NUL, which no client datagram has. */
export function isGatewayNotice(inc: Incoming): boolean {
  return inc.reqId === 0 && inc.text.charCodeAt(0) === 0;
}

/** A line for a client, through the gateway that holds its address. */
export interface Outgoing {
  gateway: string;
  line: OutboundLine;
}

/** How long a SEND's tag stays claimed: a retry within it gets the first reply (docs/protocol.md). */
export const DEDUP_WINDOW_MS = SEND_DEDUP_WINDOW_MS;

/**
 * Password work done before the transaction, keyed by request index. The batches of the stream
 * never hash: password requests run in small batches of their own, off the hot path, after
 * their hashing (password-work.ts), and bring their results here.
 */
export interface Prepared {
  newHashes: Map<number, string>;
  /** lost: the password is that of an account of this name that lost a registration race. */
  loginVerdicts: Map<number, { ok: boolean; hash: string | undefined; lost?: boolean }>;
  /** The session's user and the hash the password was checked against. */
  unregisterVerdicts: Map<number, { ok: boolean; user: string; hash: string | undefined }>;
}

export function emptyPrepared(): Prepared {
  return { newHashes: new Map(), loginVerdicts: new Map(), unregisterVerdicts: new Map() };
}

export interface ReqCtx {
  index: number;
  in: Incoming;
  tag: string | undefined;
  req: Request | undefined;
  lines: Outgoing[];
  /** The untagged final reply line, remembered for exactly-once SEND. */
  reply?: string;
  /** Set when this SEND repeats a (session, tag) seen earlier in the same batch. */
  dupOf?: ReqCtx;
  /** The session this request acts in (found at its address, and proven where it must be). */
  session?: Session;
}

/** A peer_outbox row buffered by the batch (docs/peer-protocol.md), typed by its kind. */
export type Frame = OutgoingFrame;
