/**
 * What gateways and routers put on the streams. Each stream entry packs many datagrams (all
 * those read in one event-loop tick, or all replies of one router batch for one gateway):
 * one XADD per batch instead of one per datagram is what keeps Redis off the critical path.
 */

/** Stream names, before the bus prefix. */
export const IN_STREAM = "in";
export const outStream = (gateway: string): string => `out:${gateway}`;

/**
 * The `in` stream's shards (BUS_SHARDS): `in` alone when 1, else `in:0` ... `in:<n-1>`. On Redis
 * Cluster each is a hash tag of its own, so the shards spread over the masters and none is
 * bigger than one master; every router consumes every shard.
 */
export function inStreams(shards: number): string[] {
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`bus shards must be a positive integer, got ${shards}`);
  return shards === 1 ? [IN_STREAM] : Array.from({ length: shards }, (_, i) => `${IN_STREAM}:${i}`);
}

/** The shard a gateway publishes to: by its id (FNV-1a), so one gateway's requests stay in order on one stream. */
export function inStreamOf(gatewayId: string, shards: number): string {
  const all = inStreams(shards);
  let h = 0x811c9dc5;
  for (const b of Buffer.from(gatewayId)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return all[h % all.length]!;
}
export const ROUTER_GROUP = "routers";
export const GATEWAY_GROUP = "gateway";

/**
 * A request: gateway-local request id, client address (host:port), datagram text (without its
 * session proof), and, when the gateway verified a session proof on it, the id of the key that
 * made it (proofKeyId). Requests with id 0 and a text starting with NUL (which no client
 * datagram can hold) are the gateway's own notices, see WITHHELD.
 */
export type InboundRequest = [reqId: number, addr: string, text: string, proof?: string];

/**
 * The gateway's notice that it did not send `MSG <id>` to addr (the amplification bound of
 * docs/protocol.md): the message must stay undelivered. Text: WITHHELD + the message id.
 */
export const WITHHELD = "\u0000withheld ";

/**
 * Control lines from a router to a gateway (never sent to the client), as the line text of an
 * OutboundLine to the client's address:
 * - BIND + `<keyId> <key> <plain>`: a session was bound to this address with this proof key;
 *   plain is 1 where the session may go on without proofs (PLAIN_SESSIONS), else 0;
 * - UNBIND: the session at this address ended.
 */
export const BIND = "\u0000bind ";
export const UNBIND = "\u0000unbind";

export function isControlLine(line: string): boolean {
  return line.charCodeAt(0) === 0;
}
export interface InboundEntry {
  g: string;
  r: InboundRequest[];
}

/** A line to send: client address, text, and the request id it answers (0 for a push). */
export type OutboundLine = [addr: string, line: string, reqId: number];

export function encodeInbound(gateway: string, reqs: InboundRequest[]): string {
  return JSON.stringify({ g: gateway, r: reqs } satisfies InboundEntry);
}

/** Never throws: a malformed entry (a bug or a foreign writer) decodes to undefined. */
export function decodeInbound(payload: string): InboundEntry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const { g, r } = v as { g?: unknown; r?: unknown };
  if (typeof g !== "string" || !Array.isArray(r)) return undefined;
  const out: InboundRequest[] = [];
  for (const x of r) {
    if (!Array.isArray(x) || typeof x[0] !== "number" || typeof x[1] !== "string" || typeof x[2] !== "string") continue;
    out.push(typeof x[3] === "string" ? [x[0], x[1], x[2], x[3]] : [x[0], x[1], x[2]]);
  }
  return { g, r: out };
}

export function encodeOutbound(lines: OutboundLine[]): string {
  return JSON.stringify(lines);
}

export function decodeOutbound(payload: string): OutboundLine[] {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return [];
  }
  if (!Array.isArray(v)) return [];
  return v.filter(
    (x): x is OutboundLine => Array.isArray(x) && typeof x[0] === "string" && typeof x[1] === "string" && typeof x[2] === "number",
  );
}
