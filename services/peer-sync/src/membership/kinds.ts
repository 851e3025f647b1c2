/**
 * The membership frame kinds: member.join (the issuer of an invite tells every member of the
 * newcomer) and member.revoke (a member is gone). Accepted from any linked cluster: every
 * member may invite and revoke. Never about this cluster itself, nor about a peer configured in
 * PEERS here (its key is the operator's, not the federation's). Each names the membership (the
 * invite that admitted it), so the two can arrive in any order (order.ts).
 */
import type { Queryable } from "@pesan/shared/db";
import { memberJoin, memberRevoke, type MemberJoin, type MemberRevoke } from "@pesan/shared/replication";
import { oneByOne, type ApplyContext, type FrameKind } from "../frame-kind.ts";
import { judgeJoin } from "./order.ts";
import * as members from "./store.ts";

async function applyMemberJoin(tx: Queryable, ctx: ApplyContext, d: MemberJoin): Promise<void> {
  // The newcomer is sent the news of its own join too (the frame goes to every peer): nothing to do.
  if (d.name === ctx.self) return;
  if (await members.isStaticPeer(tx, d.name)) return ctx.ignore("member.join", "not_member", { member: d.name });
  // What the issuer knew revoked of this name is revoked here too, before judging (order.ts).
  await members.tombstoneInvites(tx, d.name, d.revoked, ctx.now);
  const cur = await members.lockMembership(tx, d.name);
  const tombstoned = new Set(await members.revokedInvites(tx, d.name));
  switch (judgeJoin(cur, d, tombstoned)) {
    case "revoked":
      return ctx.ignore("member.join", "revoked", { member: d.name, invite: d.invite });
    case "conflict":
      // Another membership of that name is active: it would cut the member we know off. Revoke first, then invite again.
      return ctx.ignore("member.join", "not_member", { member: d.name, reason: "another membership of that name is active" });
    case "same":
      return;
    case "record":
      await members.recordMember(tx, d, ctx.peer, ctx.now, d.invite);
  }
}

async function applyMemberRevoke(tx: Queryable, ctx: ApplyContext, d: MemberRevoke): Promise<void> {
  if (d.name === ctx.self || (await members.isStaticPeer(tx, d.name))) return ctx.ignore("member.revoke", "not_member", { member: d.name });
  // Tombstones the membership even when it is not (or no longer) the active one here.
  await members.revokeMember(tx, d.name, ctx.now, d.invite);
}

export const MEMBER_KINDS = {
  "member.join": { schema: memberJoin, applyRun: oneByOne(applyMemberJoin) } satisfies FrameKind<MemberJoin>,
  "member.revoke": { schema: memberRevoke, applyRun: oneByOne(applyMemberRevoke) } satisfies FrameKind<MemberRevoke>,
};
