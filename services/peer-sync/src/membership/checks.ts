/**
 * The pure half of a join (docs/peer-protocol.md, "Joining by invite"): the bodies of the join
 * request and its answer, and whether an invite admits a request. The issuer runs these inside
 * the one transaction that marks the invite used, so a refusal changes nothing.
 */
import { z } from "zod";
import { CLUSTER_NAME_RE, HOST_PORT_RE } from "@pesan/shared/names";
import { inviteId } from "@pesan/shared/replication";
import type { Membership } from "./order.ts";
import { PUBLIC_KEY_RE } from "./keys.ts";

export const JOIN_PATH = "/v1/join";

/** One member as a join answer lists it, and as a newcomer tells of itself. */
export const memberInfo = z.object({
  name: z.string().regex(CLUSTER_NAME_RE),
  syncUrl: z.string().min(1).max(2048),
  address: z.string().regex(HOST_PORT_RE),
  publicKey: z.string().regex(PUBLIC_KEY_RE),
});
export type MemberInfo = z.infer<typeof memberInfo>;

export const joinBody = z.object({ v: z.literal(1), kind: z.literal("join"), server: memberInfo });
export type JoinBody = z.infer<typeof joinBody>;
/** A member as the answer lists it: with the invite that admitted it, when the issuer knows one (a member, not a PEERS peer). */
export const answerMember = memberInfo.extend({ invite: inviteId.optional() });
export type AnswerMember = z.infer<typeof answerMember>;
/** Every member the issuer links with (itself first), for the newcomer to link with each. */
export const joinAnswer = z.object({ v: z.literal(1), kind: z.literal("members"), members: z.array(answerMember).min(1).max(1000) });
export type JoinAnswer = z.infer<typeof joinAnswer>;

/** Why a join is refused: a bounded set (the `error` of the answer, a log field). */
export type JoinRefusal = "unknown_invite" | "bad_signature" | "invite_name" | "invite_expired" | "invite_used" | "clock_skew" | "replay" | "name_taken" | "bad_request";

export interface InviteRow {
  id: string;
  name: string;
  mac_key: string;
  expires_at: Date;
  used_at: Date | null;
}

/**
 * Whether this invite admits a request from `from` now. The signature is checked by the caller
 * first (with the row's key), so whoever learns "expired" or "used" holds the secret.
 *
 * `again`: the invite was used, by this very newcomer (`member`: the active membership of that
 * name here, admitted by this invite, with the key the request gives): its answer was lost and
 * it asks once more, so it is answered again and nothing changes (expired meanwhile or not: it
 * is a member already). Anyone else, even with the secret, is refused as reused.
 */
export function checkInvite(
  row: InviteRow,
  from: string,
  publicKey: string,
  member: Membership | undefined,
  now: Date,
): { ok: true; again: boolean } | { ok: false; status: 403; reason: JoinRefusal; message: string } {
  if (row.name !== from) return { ok: false, status: 403, reason: "invite_name", message: `this invite is for ${row.name}, not ${from}` };
  if (row.used_at !== null) {
    if (member?.inviteId === row.id && member.publicKey === publicKey) return { ok: true, again: true };
    return { ok: false, status: 403, reason: "invite_used", message: "this invite was used already (an invite works once)" };
  }
  if (row.expires_at.getTime() <= now.getTime()) return { ok: false, status: 403, reason: "invite_expired", message: `this invite expired at ${row.expires_at.toISOString()}` };
  return { ok: true, again: false };
}

/**
 * Who the newcomer may not be: this cluster, a peer configured in PEERS, or a member that is
 * not revoked (revoke it first: a second key pair under one name would be two clusters).
 */
export function nameTaken(name: string, o: { self: string; staticPeers: ReadonlySet<string>; activeMembers: ReadonlySet<string> }): string | undefined {
  if (name === o.self) return `${name} is this cluster's own name`;
  if (o.staticPeers.has(name)) return `${name} is a peer configured in PEERS`;
  if (o.activeMembers.has(name)) return `${name} is a member already (revoke it first)`;
  return undefined;
}
