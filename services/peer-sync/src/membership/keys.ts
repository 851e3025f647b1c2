/**
 * A cluster's long-term X25519 key pair and the pair key two members derive from theirs. Pure:
 * the database keeps the pair (membership/store.ts); only public keys ever travel, and only in
 * authenticated messages (a signed status, a join answer, a member.join frame).
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync } from "node:crypto";

/** Both halves as base64url raw 32-byte keys (a JWK's `d` and `x`). */
export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

export const PUBLIC_KEY_RE = /^[A-Za-z0-9_-]{43}$/;
const LABEL = "pesan-peer-v1 pair key";

export function generateKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync("x25519");
  const jwk = privateKey.export({ format: "jwk" });
  return { privateKey: jwk.d!, publicKey: jwk.x! };
}

/**
 * The key two clusters share: HKDF-SHA256 over their X25519 shared secret, the info binding
 * both names (sorted, so both sides get the same) and the protocol label: a key derived for one
 * pair of names is no key for another, even between the same two key pairs. Hex, 64
 * characters: the same form as a PEERS key, used the same way (HMAC of every request).
 */
export function pairKey(self: { name: string; keys: KeyPair }, peer: { name: string; publicKey: string }): string {
  if (!PUBLIC_KEY_RE.test(peer.publicKey)) throw new Error(`${peer.name}'s public key is not a base64url X25519 key`);
  const privateKey = createPrivateKey({ key: { kty: "OKP", crv: "X25519", d: self.keys.privateKey, x: self.keys.publicKey }, format: "jwk" });
  const publicKey = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: peer.publicKey }, format: "jwk" });
  const shared = diffieHellman({ privateKey, publicKey });
  // A low-order public key makes the secret all zeros, known to anyone: never a key.
  if (shared.every((b) => b === 0)) throw new Error(`${peer.name}'s public key is a low-order point`);
  const [x, y] = [self.name, peer.name].sort();
  return Buffer.from(hkdfSync("sha256", shared, Buffer.alloc(0), `${LABEL}\n${x}\n${y}`, 32)).toString("hex");
}
