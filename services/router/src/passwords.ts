/**
 * Slow salted password hashes with node:crypto scrypt. Stored as
 * `scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>` so the cost can be raised later while old
 * hashes still verify. scrypt runs on libuv's thread pool, off the event loop.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

const KEY_LEN = 32;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LEN, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string, logN: number): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, logN, 8, 1);
  return `scrypt$${logN}$8$1$${salt.toString("base64")}$${key.toString("base64")}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [, logN, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, "base64");
  const key = await derive(password, Buffer.from(salt, "base64"), Number(logN), Number(r), Number(p));
  return key.length === expected.length && timingSafeEqual(key, expected);
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
