/**
 * What gateways and routers put on the streams. Each stream entry packs many datagrams (all
 * those read in one event-loop tick, or all replies of one router batch for one gateway):
 * one XADD per batch instead of one per datagram is what keeps Redis off the critical path.
 */

/** Stream names, before the bus prefix. */
export const IN_STREAM = "in";
export const outStream = (gateway: string): string => `out:${gateway}`;
export const ROUTER_GROUP = "routers";
export const GATEWAY_GROUP = "gateway";

/**
 * The text of a request with id 0 that only says "this address was heard from" (for a
 * datagram the gateway answered itself): it renews a session lease and gets no reply.
 */
export const TOUCH = "";

/** A request: gateway-local request id, client address (host:port), datagram text. */
export type InboundRequest = [reqId: number, addr: string, text: string];
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
    if (Array.isArray(x) && typeof x[0] === "number" && typeof x[1] === "string" && typeof x[2] === "string") out.push([x[0], x[1], x[2]]);
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
