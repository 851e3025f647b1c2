/**
 * Session proofs (protocol v2, docs/protocol.md "Security"). A UDP source address can be forged
 * by anyone, so a datagram of a proof session carries a MAC made with the key that only the
 * `OK LOGIN <user> <token> <key>` reply gave out, over a per-key sequence number and the rest of
 * the datagram:
 *
 *     ~<seq>.<mac> <datagram as v1 would send it, tag included>
 *     mac = base64url(HMAC-SHA256(base64url-decode(key), "pesan-v2 <seq> <rest>"))[0..16)
 *
 * seq starts at 1 for each key (each LOGIN/RESUME issues a new key) and grows by one per
 * datagram; the receiver keeps a sliding window (RFC 6479 style), so a datagram replayed byte
 * for byte does nothing, while reordering within the window is tolerated. Pure functions:
 * nothing here throws on input.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const PROOF_PREFIX = "~";
/** Bytes of the key (sent as 22 base64url characters). */
export const PROOF_KEY_BYTES = 16;
/** MAC characters carried: 16 base64url characters = 96 bits. */
export const PROOF_MAC_CHARS = 16;
/** How far behind the highest sequence number a datagram may arrive and still count. */
export const REPLAY_WINDOW = 1024;
/** Sequence numbers are kept below 2^48: exact in a double, and no client sends that many. */
export const MAX_PROOF_SEQ = 2 ** 48 - 1;

const KEY_RE = /^[A-Za-z0-9_-]{22}$/;
const PROOF_RE = /^~([1-9][0-9]{0,14})\.([A-Za-z0-9_-]{16}) /;

export type ProofSplit =
  /** Not a proof datagram (does not start with `~`): a plain (v1) datagram. */
  | { kind: "plain" }
  /** Starts with `~` but is not `~<seq>.<mac> `: never valid. */
  | { kind: "malformed" }
  | { kind: "proof"; seq: number; mac: string; payload: string };

/** A fresh session key, as sent in `OK LOGIN`. */
export function newProofKey(): string {
  return randomBytes(PROOF_KEY_BYTES).toString("base64url");
}

export function isProofKey(s: string): boolean {
  return KEY_RE.test(s);
}

/**
 * A short name for a key, for the gateway to tell the router which key proved a datagram
 * without putting the key itself on the bus.
 */
export function proofKeyId(key: string): string {
  return createHash("sha256").update(`pesan-v2 key id ${key}`).digest("base64url").slice(0, 12);
}

function macOf(key: string, seq: number, payload: string): string {
  return createHmac("sha256", Buffer.from(key, "base64url")).update(`pesan-v2 ${seq} ${payload}`, "utf8").digest("base64url").slice(0, PROOF_MAC_CHARS);
}

/** The datagram a proof session sends: `~<seq>.<mac> <payload>`. */
export function signDatagram(key: string, seq: number, payload: string): string {
  return `${PROOF_PREFIX}${seq}.${macOf(key, seq, payload)} ${payload}`;
}

/** Splits a received datagram into its proof and the rest. Never throws. */
export function splitProof(text: string): ProofSplit {
  if (!text.startsWith(PROOF_PREFIX)) return { kind: "plain" };
  const m = PROOF_RE.exec(text);
  if (!m) return { kind: "malformed" };
  const seq = Number(m[1]);
  if (!(seq <= MAX_PROOF_SEQ)) return { kind: "malformed" };
  return { kind: "proof", seq, mac: m[2]!, payload: text.slice(m[0].length) };
}

/** Whether mac is the right one for (key, seq, payload); constant time in the MAC. */
export function verifyProof(key: string, seq: number, mac: string, payload: string): boolean {
  if (!isProofKey(key) || mac.length !== PROOF_MAC_CHARS) return false;
  const want = Buffer.from(macOf(key, seq, payload));
  const got = Buffer.from(mac);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * Anti-replay window over sequence numbers: accepts each number once, and nothing more than
 * REPLAY_WINDOW below the highest accepted. Call accept() only after the MAC verified, so a
 * forged datagram cannot move the window.
 */
export class ReplayWindow {
  private top = 0;
  private readonly seen = new Uint8Array(REPLAY_WINDOW);

  accept(seq: number): boolean {
    if (!Number.isInteger(seq) || seq < 1 || seq > MAX_PROOF_SEQ) return false;
    if (seq > this.top) {
      const gap = Math.min(seq - this.top, REPLAY_WINDOW);
      for (let i = 1; i <= gap; i++) this.seen[(this.top + i) % REPLAY_WINDOW] = 0;
      this.top = seq;
      this.seen[seq % REPLAY_WINDOW] = 1;
      return true;
    }
    if (seq <= this.top - REPLAY_WINDOW) return false;
    const slot = seq % REPLAY_WINDOW;
    if (this.seen[slot] === 1) return false;
    this.seen[slot] = 1;
    return true;
  }

  /** The highest sequence number accepted so far (0 before the first). */
  get highest(): number {
    return this.top;
  }
}

/** The sending side: one key and its counter (a new key starts again at 1). */
export class ProofSigner {
  readonly key: string;
  private seq = 0;

  constructor(key: string) {
    this.key = key;
  }

  sign(payload: string): string {
    this.seq += 1;
    return signDatagram(this.key, this.seq, payload);
  }
}
