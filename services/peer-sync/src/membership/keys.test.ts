import { generateKeyPair, pairKey, PUBLIC_KEY_RE } from "./keys.ts";

test("two clusters derive the same pair key from their own private key and the other's public key", () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  expect(a.publicKey).toMatch(PUBLIC_KEY_RE);
  const ab = pairKey({ name: "a", keys: a }, { name: "b", publicKey: b.publicKey });
  expect(ab).toMatch(/^[0-9a-f]{64}$/);
  expect(pairKey({ name: "b", keys: b }, { name: "a", publicKey: a.publicKey })).toBe(ab);
});

test("the key is bound to both names: the same key pairs under other names give another key", () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const ab = pairKey({ name: "a", keys: a }, { name: "b", publicKey: b.publicKey });
  expect(pairKey({ name: "a", keys: a }, { name: "c", publicKey: b.publicKey })).not.toBe(ab);
  expect(pairKey({ name: "x", keys: a }, { name: "b", publicKey: b.publicKey })).not.toBe(ab);
});

test("a third cluster's key pair does not give the pair's key", () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const m = generateKeyPair();
  const ab = pairKey({ name: "a", keys: a }, { name: "b", publicKey: b.publicKey });
  expect(pairKey({ name: "b", keys: m }, { name: "a", publicKey: a.publicKey })).not.toBe(ab);
});

test("a malformed or low-order public key is refused, not used", () => {
  const a = generateKeyPair();
  expect(() => pairKey({ name: "a", keys: a }, { name: "b", publicKey: "short" })).toThrow(/not a base64url X25519 key/);
  // The all-zero point: the shared secret would be all zeros, known to everyone.
  const zero = Buffer.alloc(32).toString("base64url");
  expect(() => pairKey({ name: "a", keys: a }, { name: "b", publicKey: zero })).toThrow();
});
