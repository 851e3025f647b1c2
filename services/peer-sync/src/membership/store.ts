/**
 * The SQL of membership (migration 014): this cluster's key pair, its invites, and the members
 * linked without a PEERS entry. A member's server_list row has no access_key (that column is
 * PEERS' keys): that is how a static peer is told from a member everywhere.
 */
import type { Queryable } from "@pesan/shared/db";
import type { AnswerMember, MemberInfo, InviteRow } from "./checks.ts";
import { generateKeyPair, type KeyPair } from "./keys.ts";
import { revokeEnds, type Membership } from "./order.ts";

/** Members' proximity, the tie-break among servers of one measured round-trip band (PEERS gives 10, 20, ...): after every configured peer. */
export const MEMBER_PROXIMITY = 1000;

/** This cluster's key pair, made at the first call (two processes racing keep the first one written). */
export async function ensureIdentity(db: Queryable): Promise<KeyPair> {
  const fresh = generateKeyPair();
  await db.query("INSERT INTO peer_identity (private_key, public_key) VALUES ($1, $2) ON CONFLICT DO NOTHING", [fresh.privateKey, fresh.publicKey]);
  const r = await db.query<{ private_key: string; public_key: string }>("SELECT private_key, public_key FROM peer_identity");
  return { privateKey: r.rows[0]!.private_key, publicKey: r.rows[0]!.public_key };
}

export async function createInvite(q: Queryable, i: { id: string; name: string; macKey: string; expiresAt: Date }): Promise<void> {
  await q.query("INSERT INTO peer_invites (id, name, mac_key, expires_at) VALUES ($1, $2, $3, $4)", [i.id, i.name, i.macKey, i.expiresAt]);
}

/** The invite, locked for this transaction: two racing joins under one invite, one wins. */
export async function lockInvite(tx: Queryable, id: string): Promise<InviteRow | undefined> {
  const r = await tx.query<{ id: string; name: string; mac_key: string; expires_at: Date | string; used_at: Date | string | null }>(
    "SELECT id, name, mac_key, expires_at, used_at FROM peer_invites WHERE id = $1 FOR UPDATE",
    [id],
  );
  const x = r.rows[0];
  return x && { id: x.id, name: x.name, mac_key: x.mac_key, expires_at: new Date(x.expires_at), used_at: x.used_at === null ? null : new Date(x.used_at) };
}

/** Invites expired before `before` (used or not) are forgotten: kept a while for the operator, then bounded. */
export async function pruneInvites(q: Queryable, before: Date): Promise<void> {
  await q.query("DELETE FROM peer_invites WHERE expires_at < $1", [before]);
}

export async function markInviteUsed(tx: Queryable, id: string, now: Date): Promise<void> {
  await tx.query("UPDATE peer_invites SET used_at = $2 WHERE id = $1", [id, now]);
}

/**
 * A member (joined here, introduced by one, or one the newcomer learns of): its row, a
 * server_list row (SERVERS lists it from now on; DOWN until its first answer) and a peer_links
 * row (bootstrapped_at NULL: it is sent this cluster's accounts and undelivered messages).
 * `inviteId`: the invite that admitted it (null: not known, see migration 015).
 */
export async function recordMember(tx: Queryable, m: MemberInfo, introducedBy: string, now: Date, inviteId: string | null): Promise<void> {
  await tx.query(
    `INSERT INTO peer_members (name, sync_url, address, public_key, introduced_by, joined_at, invite_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (name) DO UPDATE SET sync_url = EXCLUDED.sync_url, address = EXCLUDED.address, public_key = EXCLUDED.public_key,
       introduced_by = EXCLUDED.introduced_by, joined_at = EXCLUDED.joined_at, invite_id = EXCLUDED.invite_id, revoked_at = NULL`,
    [m.name, m.syncUrl, m.address, m.publicKey, introducedBy, now, inviteId],
  );
  await tx.query(
    `INSERT INTO server_list (name, address, active, proximity, sync_url, public_key) VALUES ($1, $2, false, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET sync_url = EXCLUDED.sync_url, public_key = EXCLUDED.public_key WHERE NOT server_list.is_self`,
    [m.name, m.address, MEMBER_PROXIMITY, m.syncUrl, m.publicKey],
  );
  await tx.query("INSERT INTO peer_links (peer) VALUES ($1) ON CONFLICT DO NOTHING", [m.name]);
}

/** The member's active membership, locked for this transaction (joins and revokes of one name apply one at a time). */
export async function lockMembership(tx: Queryable, name: string): Promise<Membership | undefined> {
  const r = await tx.query<{ invite_id: string | null; public_key: string }>("SELECT invite_id, public_key FROM peer_members WHERE name = $1 AND revoked_at IS NULL FOR UPDATE", [name]);
  const x = r.rows[0];
  return x && { inviteId: x.invite_id, publicKey: x.public_key };
}

/** Remembers revoked memberships of `name` (a member.join naming one is ignored from now on). */
export async function tombstoneInvites(tx: Queryable, name: string, inviteIds: readonly string[], now: Date): Promise<void> {
  if (inviteIds.length === 0) return;
  await tx.query("INSERT INTO peer_revoked_invites (name, invite_id, revoked_at) SELECT $1, unnest($2::text[]), $3 ON CONFLICT DO NOTHING", [name, inviteIds, now]);
}

/** The revoked memberships of `name` remembered here, newest first (at most 100: what a member.join carries). */
export async function revokedInvites(q: Queryable, name: string): Promise<string[]> {
  const r = await q.query<{ invite_id: string }>("SELECT invite_id FROM peer_revoked_invites WHERE name = $1 ORDER BY revoked_at DESC, invite_id LIMIT 100", [name]);
  return r.rows.map((x) => x.invite_id);
}

export async function pruneRevokedInvites(q: Queryable, before: Date): Promise<void> {
  await q.query("DELETE FROM peer_revoked_invites WHERE revoked_at < $1", [before]);
}

/**
 * Ends `name`'s active membership if `inviteId` names it (or is undefined, or the membership's
 * invite is not known: order.ts revokeEnds), and forgets its link; tombstones `inviteId` either
 * way. True if a membership ended.
 */
export async function revokeMember(tx: Queryable, name: string, now: Date, inviteId: string | undefined): Promise<boolean> {
  if (inviteId !== undefined) await tombstoneInvites(tx, name, [inviteId], now);
  if (!revokeEnds(await lockMembership(tx, name), inviteId)) return false;
  await tx.query("UPDATE peer_members SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL", [name, now]);
  await forgetLink(tx, name);
  return true;
}

/**
 * A member's server_list and peer_links rows go (SERVERS stops listing it; a new invite
 * bootstraps it again). Run again after its Link stopped: a check in flight may have written
 * its row back.
 */
export async function forgetLink(q: Queryable, name: string): Promise<void> {
  await q.query("DELETE FROM server_list WHERE name = $1 AND NOT is_self AND access_key IS NULL", [name]);
  await q.query("DELETE FROM peer_links WHERE peer = $1", [name]);
}

export interface MemberRow extends MemberInfo {
  introducedBy: string;
  inviteId: string | null;
}

export async function activeMembers(q: Queryable): Promise<MemberRow[]> {
  const r = await q.query<{ name: string; sync_url: string; address: string; public_key: string; introduced_by: string; invite_id: string | null }>(
    "SELECT name, sync_url, address, public_key, introduced_by, invite_id FROM peer_members WHERE revoked_at IS NULL ORDER BY joined_at, name",
  );
  return r.rows.map((x) => ({ name: x.name, syncUrl: x.sync_url, address: x.address, publicKey: x.public_key, introducedBy: x.introduced_by, inviteId: x.invite_id }));
}

/** Whether `name` is a peer configured in PEERS here (seedPeers wrote its key). */
export async function isStaticPeer(q: Queryable, name: string): Promise<boolean> {
  const r = await q.query("SELECT 1 FROM server_list WHERE name = $1 AND NOT is_self AND access_key IS NOT NULL", [name]);
  return r.rowCount > 0;
}

/** A peer's public key as its signed status gave it (static peers: what a join answer hands on). */
export async function notePublicKey(q: Queryable, peer: string, publicKey: string): Promise<void> {
  await q.query("UPDATE server_list SET public_key = $2 WHERE name = $1 AND NOT is_self AND public_key IS DISTINCT FROM $2", [peer, publicKey]);
}

/**
 * Every linked cluster a newcomer can link with through what we know (a sync URL and a public
 * key), but `except` itself. A peer that never told its public key (one not upgraded) is left
 * out: the newcomer could not derive a key with it.
 */
export async function linkableServers(q: Queryable, names: string[], except: string): Promise<AnswerMember[]> {
  // A member's invite goes with it (the newcomer's revoke of it must name that membership).
  const r = await q.query<{ name: string; sync_url: string; address: string; public_key: string; invite_id: string | null }>(
    `SELECT s.name, s.sync_url, s.address, s.public_key, m.invite_id FROM server_list s
       LEFT JOIN peer_members m ON m.name = s.name AND m.revoked_at IS NULL
      WHERE NOT s.is_self AND s.name = ANY($1::text[]) AND s.name <> $2 AND s.sync_url IS NOT NULL AND s.public_key IS NOT NULL ORDER BY s.proximity, s.name`,
    [names, except],
  );
  return r.rows.map((x) => ({ name: x.name, syncUrl: x.sync_url, address: x.address, publicKey: x.public_key, ...(x.invite_id ? { invite: x.invite_id } : {}) }));
}

/** Whether this cluster already joined through `issuer` (or learnt of it otherwise): a restart with JOIN still set joins no more. */
export async function isMember(q: Queryable, name: string): Promise<boolean> {
  const r = await q.query("SELECT 1 FROM peer_members WHERE name = $1", [name]);
  return r.rowCount > 0;
}


/** The invite this cluster joined with (null: none recorded). */
export async function joinedWith(q: Queryable): Promise<string | null> {
  const r = await q.query<{ joined_with_invite: string | null }>("SELECT joined_with_invite FROM peer_identity");
  return r.rows[0]?.joined_with_invite ?? null;
}

export async function setJoinedWith(q: Queryable, inviteId: string): Promise<void> {
  await q.query("UPDATE peer_identity SET joined_with_invite = $1", [inviteId]);
}
