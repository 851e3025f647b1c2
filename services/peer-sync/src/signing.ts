/**
 * Request and response signatures of the peer protocol (docs/peer-protocol.md). Pure: no I/O,
 * no clock; callers pass the time and the nonce, so tests can build exactly what the service
 * sends (and replay it).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const AUTH_SCHEME = "v1";

export const HEADERS = {
  from: "x-pesan-from",
  to: "x-pesan-to",
  timestamp: "x-pesan-timestamp",
  nonce: "x-pesan-nonce",
  signature: "x-pesan-signature",
  /** A join request only: the invite it is signed under (docs/peer-protocol.md, "Joining by invite"). */
  invite: "x-pesan-invite",
} as const;

export const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;

export interface RequestParts {
  method: string;
  /** The protocol path (`/v1/hello`), without any prefix of the peer's sync URL. */
  path: string;
  from: string;
  to: string;
  /** Milliseconds since the epoch, sender's clock. */
  timestamp: number;
  nonce: string;
  body: string | Buffer;
}

export interface ResponseParts {
  status: number;
  /** The responder. */
  from: string;
  /** The requester. */
  to: string;
  /** The request's nonce: binds the answer to that request, so an old answer cannot be replayed to a new one. */
  nonce: string;
  body: string | Buffer;
}

/**
 * The first line of each canonical form. A join request is signed with an invite's key, not a
 * link's: its own label, so no signature of one kind can ever pass for the other.
 */
const LABELS = {
  request: "pesan-peer-v1 request",
  response: "pesan-peer-v1 response",
  joinRequest: "pesan-peer-v1 join request",
  joinResponse: "pesan-peer-v1 join response",
} as const;

const sha256 = (b: string | Buffer): string => createHash("sha256").update(b).digest("hex");

/**
 * Names, the receiver included, are signed: a request for one peer cannot be replayed to
 * another peer sharing nothing but the same sender, nor reflected back to its sender.
 */
export function requestCanonical(p: RequestParts, label: string = LABELS.request): string {
  return [label, p.method.toUpperCase(), p.path, p.from, p.to, String(p.timestamp), p.nonce, sha256(p.body)].join("\n");
}

export function responseCanonical(p: ResponseParts, label: string = LABELS.response): string {
  return [label, String(p.status), p.from, p.to, p.nonce, sha256(p.body)].join("\n");
}

function mac(key: string, text: string): string {
  return `${AUTH_SCHEME}=${createHmac("sha256", key).update(text).digest("hex")}`;
}

/** Compares in constant time; a malformed signature is simply not equal. */
function sameSignature(expected: string, got: string | undefined): boolean {
  if (typeof got !== "string" || got.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(got));
}

export const signRequest = (key: string, p: RequestParts): string => mac(key, requestCanonical(p));
export const verifyRequest = (key: string, p: RequestParts, signature: string | undefined): boolean => sameSignature(signRequest(key, p), signature);
export const signResponse = (key: string, p: ResponseParts): string => mac(key, responseCanonical(p));
export const verifyResponse = (key: string, p: ResponseParts, signature: string | undefined): boolean => sameSignature(signResponse(key, p), signature);

export const signJoinRequest = (key: string, p: RequestParts): string => mac(key, requestCanonical(p, LABELS.joinRequest));
export const verifyJoinRequest = (key: string, p: RequestParts, signature: string | undefined): boolean => sameSignature(signJoinRequest(key, p), signature);
export const signJoinResponse = (key: string, p: ResponseParts): string => mac(key, responseCanonical(p, LABELS.joinResponse));
export const verifyJoinResponse = (key: string, p: ResponseParts, signature: string | undefined): boolean => sameSignature(signJoinResponse(key, p), signature);

export function newNonce(): string {
  return randomBytes(16).toString("base64url");
}

/** Every header of a signed request. What PeerClient sends; tests use it to forge and replay. */
export function signedHeaders(key: string, p: RequestParts): Record<string, string> {
  return {
    [HEADERS.from]: p.from,
    [HEADERS.to]: p.to,
    [HEADERS.timestamp]: String(p.timestamp),
    [HEADERS.nonce]: p.nonce,
    [HEADERS.signature]: signRequest(key, p),
    "content-type": "application/json",
  };
}
