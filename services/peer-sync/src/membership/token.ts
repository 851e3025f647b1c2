/**
 * The invite token: what an operator hands the newcomer's operator, and all a newcomer needs to
 * join. `pesan-invite-v1.` + base64url JSON. Pure (no I/O, no clock).
 *
 * What it is worth: its secret is the only thing that lets a join request in, for the one name,
 * once, before expiry. The issuer keeps only a MAC key derived from the secret (macKey), so the
 * token is as secret as a PEERS key until it is used or expires.
 */
import { hkdfSync, randomBytes } from "node:crypto";
import { z } from "zod";
import { CLUSTER_NAME_RE } from "@pesan/shared/names";

export const TOKEN_PREFIX = "pesan-invite-v1.";

const tokenBody = z.object({
  /** The issuing cluster's name and sync URL: where the join request goes. */
  issuer: z.string().regex(CLUSTER_NAME_RE),
  syncUrl: z.string().min(1).max(2048),
  id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  /** The only SERVER_NAME it admits. */
  name: z.string().regex(CLUSTER_NAME_RE),
  secret: z.string().regex(/^[A-Za-z0-9_-]{32,128}$/),
  expiresAt: z.iso.datetime({ offset: true }),
});
export type Invite = z.infer<typeof tokenBody>;

export function encodeInvite(i: Invite): string {
  return TOKEN_PREFIX + Buffer.from(JSON.stringify(i), "utf8").toString("base64url");
}

/** The invite in a token, or why it is not one (the message never quotes the token). */
export function decodeInvite(token: string): { ok: true; invite: Invite } | { ok: false; error: string } {
  const t = token.trim();
  if (!t.startsWith(TOKEN_PREFIX)) return { ok: false, error: `not an invite token (must start with ${TOKEN_PREFIX})` };
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(t.slice(TOKEN_PREFIX.length), "base64url").toString("utf8"));
  } catch {
    return { ok: false, error: "the invite token is damaged (not base64url JSON)" };
  }
  const r = tokenBody.safeParse(json);
  if (!r.success) return { ok: false, error: `the invite token is damaged (${r.error.issues.map((i) => i.path.join(".")).join(", ")})` };
  return { ok: true, invite: r.data };
}

/** A fresh invite for `name`: a random id and a 256-bit secret. */
export function newInvite(o: { issuer: string; syncUrl: string; name: string; expiresAt: Date }): Invite {
  return { issuer: o.issuer, syncUrl: o.syncUrl, id: randomBytes(16).toString("base64url"), name: o.name, secret: randomBytes(32).toString("base64url"), expiresAt: o.expiresAt.toISOString() };
}

/**
 * The key that signs the join request and its answer. Derived, not the secret itself, and bound
 * to the invite's id and name: the issuer stores this, not the secret.
 */
export function inviteMacKey(i: Pick<Invite, "id" | "name" | "secret">): string {
  return Buffer.from(hkdfSync("sha256", Buffer.from(i.secret, "utf8"), Buffer.alloc(0), `pesan-invite-v1 mac\n${i.id}\n${i.name}`, 32)).toString("hex");
}

/** `1h`, `30m`, `2d`, `90s` to milliseconds; undefined if it is none of those (or over 30 days). */
export function parseTtl(s: string): number | undefined {
  const m = /^(\d{1,6})([smhd])$/.exec(s.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  return ms > 0 && ms <= 30 * 86_400_000 ? ms : undefined;
}
