/**
 * Slow salted password hashes with node:crypto scrypt. Stored as
 * `scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>` so the cost can be raised later while old
 * hashes still verify. scrypt runs on libuv's thread pool, off the event loop.
 *
 * A stored hash may have come from another cluster (user.register), so it is untrusted input:
 * it is used only if its parameters are ones a router makes (parsePassHash: log2 N within
 * PASSWORD_HASH_COST's range, r = 8, p = 1). Anything else fails that one LOGIN (ERR AUTH)
 * at once, instead of costing seconds of scrypt or throwing inside a password job.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { PASS_HASH_KEY_BYTES, PASS_HASH_P, PASS_HASH_R, PASS_HASH_SALT_BYTES, parsePassHash } from "@pesan/shared/protocol";

function derive(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, PASS_HASH_KEY_BYTES, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string, logN: number): Promise<string> {
  const salt = randomBytes(PASS_HASH_SALT_BYTES);
  const key = await derive(password, salt, logN, PASS_HASH_R, PASS_HASH_P);
  return `scrypt$${logN}$${PASS_HASH_R}$${PASS_HASH_P}$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** False for a wrong password and for a stored hash this software would not make; never throws for either. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const h = parsePassHash(stored);
  if (!h) return false;
  const key = await derive(password, h.salt, h.logN, h.r, h.p);
  return key.length === h.key.length && timingSafeEqual(key, h.key);
}

/**
 * Verifies against a fixed throwaway hash: a login for an unknown user costs as much as a
 * real one, so timing does not tell which user names exist.
 */
export class PasswordChecker {
  private readonly logN: number;
  private dummy: Promise<string> | undefined;

  constructor(logN: number) {
    this.logN = logN;
  }

  hash(password: string): Promise<string> {
    return hashPassword(password, this.logN);
  }

  async verify(password: string, stored: string | undefined): Promise<boolean> {
    if (stored !== undefined) return verifyPassword(password, stored);
    this.dummy ??= hashPassword("not a password", this.logN);
    await verifyPassword(password, await this.dummy);
    return false;
  }
}
