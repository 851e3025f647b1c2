/**
 * The stored password hash format, `scrypt$<log2 N>$<r>$<p>$<salt b64>$<key b64>`, and the
 * parameters a pesan cluster accepts in one. The routers make these hashes (PASSWORD_HASH_COST
 * sets log2 N; r = 8, p = 1 always), and peers replicate them with `user.register`. A hash is a
 * recipe for work: `scrypt$16$8$64$...` costs 64 times a cost-16 hash (about 20 s), and
 * `scrypt$NaN$...` makes node:crypto throw. So a hash is used, or accepted from a peer, only
 * if its parameters are ones this software itself would produce.
 */

/** The range of PASSWORD_HASH_COST (log2 of scrypt's N): what a router may be configured to make. */
export const PASS_HASH_COST_MIN = 10;
export const PASS_HASH_COST_MAX = 20;
/** What every router writes: r and p are fixed; only N is configurable. */
export const PASS_HASH_R = 8;
export const PASS_HASH_P = 1;
export const PASS_HASH_SALT_BYTES = 16;
export const PASS_HASH_KEY_BYTES = 32;

export interface PassHash {
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Canonical base64 of exactly n bytes (a round trip gives the same text back). */
function b64Of(text: string, n: number): Buffer | undefined {
  if (!B64.test(text)) return undefined;
  const buf = Buffer.from(text, "base64");
  return buf.length === n && buf.toString("base64") === text ? buf : undefined;
}

/**
 * The parameters of a stored hash, or undefined when it is not one this software would make:
 * another layout, a cost outside PASS_HASH_COST_MIN..MAX, r or p other than 8 and 1, or a salt
 * or key of another length. Digits only, so `NaN`, `1e1` or `0x10` never reach scrypt.
 */
export function parsePassHash(stored: string): PassHash | undefined {
  if (stored.length > 256) return undefined;
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return undefined;
  const [, logN, r, p, salt, key] = parts as [string, string, string, string, string, string];
  if (!/^\d{1,2}$/.test(logN) || r !== String(PASS_HASH_R) || p !== String(PASS_HASH_P)) return undefined;
  const n = Number(logN);
  if (n < PASS_HASH_COST_MIN || n > PASS_HASH_COST_MAX) return undefined;
  const s = b64Of(salt, PASS_HASH_SALT_BYTES);
  const k = b64Of(key, PASS_HASH_KEY_BYTES);
  if (!s || !k) return undefined;
  return { logN: n, r: PASS_HASH_R, p: PASS_HASH_P, salt: s, key: k };
}

export function isAcceptablePassHash(stored: string): boolean {
  return parsePassHash(stored) !== undefined;
}
