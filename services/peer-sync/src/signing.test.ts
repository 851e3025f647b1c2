import { createHash, createHmac } from "node:crypto";
import { HEADERS, newNonce, requestCanonical, signedHeaders, signJoinRequest, signJoinResponse, signRequest, signResponse, verifyJoinRequest, verifyJoinResponse, verifyRequest, verifyResponse, type RequestParts } from "./signing.ts";

const KEY = "0123456789abcdef0123456789abcdef";
const base: RequestParts = { method: "POST", path: "/v1/hello", from: "b", to: "a", timestamp: 1_700_000_000_000, nonce: "AAAAAAAAAAAAAAAAAAAAAA", body: '{"v":1}' };

test("the canonical text is the documented one, and the signature its HMAC-SHA256 in hex", () => {
  const bodyHash = createHash("sha256").update('{"v":1}').digest("hex");
  const text = `pesan-peer-v1 request\nPOST\n/v1/hello\nb\na\n1700000000000\nAAAAAAAAAAAAAAAAAAAAAA\n${bodyHash}`;
  expect(requestCanonical(base)).toBe(text);
  expect(signRequest(KEY, base)).toBe(`v1=${createHmac("sha256", KEY).update(text).digest("hex")}`);
  // a fixed vector (also in docs/peer-protocol.md), so another implementation can check itself
  expect(signRequest(KEY, base)).toBe("v1=bd320e0bec7374a28d2adae834d22aa582cfb65a8db1aadc9f2f306eb0ceb9cd");
});

test("the signature verifies, and fails when any signed part or the key changes", () => {
  const sig = signRequest(KEY, base);
  expect(verifyRequest(KEY, base, sig)).toBe(true);
  const changes: Array<Partial<RequestParts>> = [
    { method: "GET" },
    { path: "/v1/announce" },
    { from: "c" },
    { to: "c" },
    { timestamp: base.timestamp + 1 },
    { nonce: "BAAAAAAAAAAAAAAAAAAAAA" },
    { body: '{"v":2}' },
  ];
  for (const c of changes) expect(verifyRequest(KEY, { ...base, ...c }, sig)).toBe(false);
  expect(verifyRequest(`${KEY}x`, base, sig)).toBe(false);
  expect(verifyRequest(KEY, base, undefined)).toBe(false);
  expect(verifyRequest(KEY, base, "")).toBe(false);
  expect(verifyRequest(KEY, base, sig.toUpperCase())).toBe(false);
  expect(verifyRequest(KEY, base, `${sig}0`)).toBe(false);
  // the method is case-insensitive, as HTTP's is
  expect(verifyRequest(KEY, { ...base, method: "post" }, sig)).toBe(true);
});

test("a body signs the same as a string or as its bytes", () => {
  expect(signRequest(KEY, { ...base, body: Buffer.from(base.body as string) })).toBe(signRequest(KEY, base));
});

test("signedHeaders carries every part the receiver needs", () => {
  const h = signedHeaders(KEY, base);
  expect(h).toEqual({
    [HEADERS.from]: "b",
    [HEADERS.to]: "a",
    [HEADERS.timestamp]: "1700000000000",
    [HEADERS.nonce]: base.nonce,
    [HEADERS.signature]: signRequest(KEY, base),
    "content-type": "application/json",
  });
});

test("a response signature is bound to the request's nonce, the status and the responder", () => {
  const r = { status: 200, from: "a", to: "b", nonce: base.nonce, body: '{"kind":"status"}' };
  const sig = signResponse(KEY, r);
  expect(verifyResponse(KEY, r, sig)).toBe(true);
  for (const c of [{ status: 201 }, { from: "c" }, { to: "c" }, { nonce: newNonce() }, { body: "{}" }]) expect(verifyResponse(KEY, { ...r, ...c }, sig)).toBe(false);
  // a request signature is never a valid response signature
  expect(verifyResponse(KEY, r, signRequest(KEY, base))).toBe(false);
});

test("nonces are 22 URL-safe characters and do not repeat", () => {
  const seen = new Set(Array.from({ length: 1000 }, () => newNonce()));
  expect(seen.size).toBe(1000);
  for (const n of seen) expect(n).toMatch(/^[A-Za-z0-9_-]{22}$/);
});

test("a join request's signature is no link request's signature, nor the other way round", () => {
  const p = { method: "POST", path: "/v1/join", from: "c", to: "a", timestamp: 1_700_000_000_000, nonce: "n".repeat(22), body: "{}" };
  const key = "k".repeat(64);
  expect(signJoinRequest(key, p)).not.toBe(signRequest(key, p));
  expect(verifyJoinRequest(key, p, signRequest(key, p))).toBe(false);
  expect(verifyRequest(key, p, signJoinRequest(key, p))).toBe(false);
  expect(verifyJoinRequest(key, p, signJoinRequest(key, p))).toBe(true);
  const r = { status: 200, from: "a", to: "c", nonce: p.nonce, body: "{}" };
  expect(verifyJoinResponse(key, r, signResponse(key, r))).toBe(false);
  expect(verifyJoinResponse(key, r, signJoinResponse(key, r))).toBe(true);
});
