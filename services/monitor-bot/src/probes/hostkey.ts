/**
 * Host key pinning. A target names the key its SSH server must present, either as a line of
 * known_hosts (`[host]:port ssh-ed25519 AAAA...`) or as the SHA256 fingerprint `ssh-keygen -lf`
 * prints. There is no "accept any key" mode: a monitor holding a key that runs commands on
 * every host is exactly what a man in the middle wants.
 */
import { createHash } from "node:crypto";

export type HostKeyPin = { kind: "fingerprint"; fingerprint: string } | { kind: "key"; type: string; blob: Buffer };

const KEY_TYPES = new Set([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "ssh-rsa",
  "ssh-dss",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

/** The pin, or a message saying what was expected. */
export function parseHostKeyPin(text: string): HostKeyPin | string {
  const s = text.trim();
  const fp = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(s);
  if (fp) return { kind: "fingerprint", fingerprint: `SHA256:${fp[1]}` };
  if (s.startsWith("SHA256:")) return "a SHA256 fingerprint is `SHA256:` and 43 base64 characters, as `ssh-keygen -lf` prints it";
  if (s.startsWith("@")) return "known_hosts markers (@cert-authority, @revoked) are not supported; give the host's own key";
  const words = s.split(/\s+/);
  // `type blob`, or `hosts type blob [comment]`.
  const at = KEY_TYPES.has(words[0] ?? "") ? 0 : KEY_TYPES.has(words[1] ?? "") ? 1 : -1;
  if (at < 0) return "expected a known_hosts line (`host ssh-ed25519 AAAA...`) or a fingerprint `SHA256:...`";
  const type = words[at]!;
  const b64 = words[at + 1] ?? "";
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return `the key after ${type} must be base64`;
  const blob = Buffer.from(b64, "base64");
  // An SSH public key blob starts with its own type as a length-prefixed string.
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || blob.length < 4 + len || blob.toString("latin1", 4, 4 + len) !== type) return `the base64 blob is not an ${type} key`;
  return { kind: "key", type, blob };
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Whether the key blob the server presented matches any pin. */
export function hostKeyMatches(blob: Buffer, pins: readonly HostKeyPin[]): boolean {
  const fp = fingerprintOf(blob);
  return pins.some((p) => (p.kind === "fingerprint" ? p.fingerprint === fp : p.blob.equals(blob)));
}

/**
 * Host key algorithms to offer, so a server with several host keys presents the pinned one.
 * Undefined (ssh2's defaults) when a fingerprint pin leaves the type open.
 */
export function hostKeyAlgorithms(pins: readonly HostKeyPin[]): string[] | undefined {
  if (pins.some((p) => p.kind === "fingerprint")) return undefined;
  const out = new Set<string>();
  for (const p of pins) {
    if (p.kind !== "key") continue;
    // An RSA key signs with SHA-2 on any server from this decade; ssh-rsa (SHA-1) last.
    if (p.type === "ssh-rsa") for (const a of ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]) out.add(a);
    else out.add(p.type);
  }
  return [...out];
}
