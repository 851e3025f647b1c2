/**
 * The membership frame kinds: member.join (the issuer of an invite tells every member of the
 * newcomer) and member.revoke (a member is gone). Accepted from any linked cluster: every
 * member may invite and revoke. Never about this cluster itself, nor about a peer configured in
 * PEERS here (its key is the operator's, not the federation's).
 */
import type { Queryable } from "@pesan/shared/db";
import { memberJoin, memberRevoke, type MemberJoin, type MemberRevoke } from "@pesan/shared/replication";
import { oneByOne, type ApplyContext, type FrameKind } from "../frame-kind.ts";
import * as members from "./store.ts";

async function applyMemberJoin(tx: Queryable, ctx: ApplyContext, d: MemberJoin): Promise<void> {
  // The newcomer is sent the news of its own join too (the frame goes to every peer): nothing to do.
  if (d.name === ctx.self) return;
  if (await members.isStaticPeer(tx, d.name)) return ctx.ignore("member.join", "not_member", { member: d.name });
  const cur = await tx.query<{ public_key: string }>("SELECT public_key FROM peer_members WHERE name = $1 AND revoked_at IS NULL FOR UPDATE", [d.name]);
  if (cur.rows[0]) {
    // Already linked: the same news again is nothing; another key under that name is refused
    // (it would cut the member we know off). Revoke first, then invite again.
    if (cur.rows[0].public_key !== d.publicKey) ctx.ignore("member.join", "not_member", { member: d.name, reason: "member with another key" });
    return;
  }
  await members.recordMember(tx, d, ctx.peer, ctx.now);
}

async function applyMemberRevoke(tx: Queryable, ctx: ApplyContext, d: MemberRevoke): Promise<void> {
  if (d.name === ctx.self || (await members.isStaticPeer(tx, d.name))) return ctx.ignore("member.revoke", "not_member", { member: d.name });
  await members.revokeMember(tx, d.name, ctx.now);
}

export const MEMBER_KINDS = {
  "member.join": { schema: memberJoin, applyRun: oneByOne(applyMemberJoin) } satisfies FrameKind<MemberJoin>,
  "member.revoke": { schema: memberRevoke, applyRun: oneByOne(applyMemberRevoke) } satisfies FrameKind<MemberRevoke>,
};
