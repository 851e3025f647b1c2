/**
 * member.join and member.revoke delivered in any order (docs/peer-protocol.md, "Revoking").
 * Frames of two issuers come through two outboxes, so a member that was down can get a revoke
 * before the older join it ends. Each membership is named by the invite that admitted it; a
 * revoke leaves a tombstone of that id, and a join carries the ids of its name its issuer knows
 * were revoked. Pure: the apply path (kinds.ts) reads the rows and writes what this decides.
 */

/** The member's active row here, if any. `inviteId` null: admitted by an invite we were not told (listed in a join answer). */
export interface Membership {
  inviteId: string | null;
  publicKey: string;
}

/**
 * What a member.join does here, once its `revoked` ids are tombstoned (`tombstoned` holds them
 * and every id revoked here before):
 * - `revoked`: it names a revoked membership (an older join after its revoke): ignored.
 * - `record`: no active membership, or one it supersedes (unknown, or revoked per this join): recorded.
 * - `same`: the membership we have: nothing to do.
 * - `conflict`: another membership of that name is active and not known revoked (two issuers
 *   admitted the name at once, or the same invite with another key): the one we have stays.
 */
export type JoinVerdict = "revoked" | "record" | "same" | "conflict";

export function judgeJoin(cur: Membership | undefined, join: { invite: string; publicKey: string }, tombstoned: ReadonlySet<string>): JoinVerdict {
  if (tombstoned.has(join.invite)) return "revoked";
  if (!cur) return "record";
  if (cur.inviteId === join.invite) return cur.publicKey === join.publicKey ? "same" : "conflict";
  if (cur.inviteId === null || tombstoned.has(cur.inviteId)) return "record";
  return "conflict";
}

/**
 * Whether a member.revoke ends the active membership here: the one it names, one whose invite we
 * do not know, or any when it names none. A revoke of an older membership leaves a newer one
 * (admitted by a new invite after it) alone.
 */
export function revokeEnds(cur: Membership | undefined, invite: string | undefined): boolean {
  if (!cur) return false;
  return invite === undefined || cur.inviteId === null || cur.inviteId === invite;
}
