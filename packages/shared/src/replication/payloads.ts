/**
 * The payloads of the replicated frame kinds (docs/peer-protocol.md), owned here because two
 * services write them: the routers (in the transaction of a client's change) and peer-sync
 * (session.down of a losing account, session.snapshot). peer-sync validates what it receives
 * with the same schemas, so a writer that drifts from the wire format fails `tsc`, not a peer.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { CLUSTER_NAME_RE, USER_NAME_RE } from "../names.ts";

const clusterName = z.string().regex(CLUSTER_NAME_RE);
const userName = z.string().regex(USER_NAME_RE);
/** An instant as JSON: ISO 8601 with an offset (Date#toISOString gives `...Z`). */
const instant = z.iso.datetime({ offset: true });
const token = z.string().min(1).max(128);
/**
 * A client's UDP address as its gateway saw it (`1.2.3.4:5` or `[::1]:5`): our gateway may
 * send REDIRECT there, so only an IP literal and a port pass, never a name to resolve (hence
 * not HOST_PORT_RE from @pesan/shared/names, which admits host names).
 */
const endpoint = z
  .string()
  .max(64)
  .refine((s) => {
    const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([0-9.]+):(\d{1,5})$/.exec(s);
    return m !== null && isIP(m[1]!) !== 0 && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
  }, "must be ip:port or [ipv6]:port");
const messageId = z.string().regex(/^[A-Za-z0-9_.:-]{1,40}$/);
/** The client protocol caps a text at 4,000 bytes; a little room for a peer configured otherwise. */
const body = z.string().max(8192);

// Update User and Update Connected.
export const userRegister = z.object({ name: userName, passHash: z.string().min(1).max(1024), createdAt: instant, home: clusterName });
export const userUnregister = z.object({ name: userName, createdAt: instant, at: instant });
/** `reach` came after v1's first release: optional, and a receiver that does not know it drops it. */
export const sessionUp = z.object({ user: userName, token, cluster: clusterName, capAck: z.boolean(), at: instant, reach: endpoint.optional() });
export const SESSION_DOWN_REASONS = ["logout", "expired", "unregistered", "replaced"] as const;
export const sessionDown = z.object({ user: userName, token, cluster: clusterName, reason: z.enum(SESSION_DOWN_REASONS), at: instant });
export const sessionSnapshot = z.object({
  cluster: clusterName,
  sessions: z.array(z.object({ user: userName, token, capAck: z.boolean(), at: instant, reach: endpoint.optional() })).max(10_000_000),
});
export type UserRegister = z.infer<typeof userRegister>;
export type UserUnregister = z.infer<typeof userUnregister>;
export type SessionUp = z.infer<typeof sessionUp>;
export type SessionDown = z.infer<typeof sessionDown>;
export type SessionSnapshot = z.infer<typeof sessionSnapshot>;

/**
 * The session.down of a session this cluster held: the router (logout, expiry, replaced,
 * unregistered) and peer-sync (a losing account's session) both end sessions.
 */
export function sessionDownPayload(session: { user: string; token: string }, cluster: string, reason: SessionDown["reason"], at: Date): SessionDown {
  return { user: session.user, token: session.token, cluster, reason, at: at.toISOString() };
}

// Update Messages and routing.
export const messageNew = z.object({ id: messageId, sentAt: instant, sender: userName, recipient: userName, body });
export const messageState = z.union([
  z.object({ id: messageId, recipient: userName, deleted: z.literal(true) }),
  z.object({ id: messageId, recipient: userName, sender: userName, sentAt: instant, body, delivered: z.boolean(), read: z.boolean() }),
]);
export const broadcastFrame = z.object({ id: messageId, sentAt: instant, sender: userName, body });
export type MessageNew = z.infer<typeof messageNew>;
export type MessageState = z.infer<typeof messageState>;
export type BroadcastFrame = z.infer<typeof broadcastFrame>;

// Membership (peer-sync's invites): a cluster that joined, told to every member by its issuer;
// a member revoked. The public key is a base64url X25519 key (43 characters).
// Each membership is named by the invite that admitted it (`invite`): a revoke names the one it
// ends, and a join lists the memberships of that name its issuer knows were revoked (`revoked`),
// so a join and a revoke delivered out of order (from two issuers' outboxes) cannot bring a
// revoked membership back.
const publicKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
export const inviteId = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/);
export const memberJoin = z.object({
  name: clusterName,
  syncUrl: z.string().min(1).max(2048),
  address: z.string().min(1).max(300),
  publicKey,
  invite: inviteId,
  revoked: z.array(inviteId).max(100).default([]),
});
export const memberRevoke = z.object({ name: clusterName, invite: inviteId.optional() });
export type MemberJoin = z.infer<typeof memberJoin>;
export type MemberRevoke = z.infer<typeof memberRevoke>;

/** Every frame kind's payload schema, by the kind written in peer_outbox.kind and on the wire. */
export const FRAME_PAYLOADS = {
  "user.register": userRegister,
  "user.unregister": userUnregister,
  "session.up": sessionUp,
  "session.down": sessionDown,
  "session.snapshot": sessionSnapshot,
  "message.new": messageNew,
  "message.state": messageState,
  broadcast: broadcastFrame,
  "member.join": memberJoin,
  "member.revoke": memberRevoke,
} as const;
export type FrameKindName = keyof typeof FRAME_PAYLOADS;
/** The payload type of each kind, as its writer builds it (optional fields may be left undefined). */
export type FramePayloads = { [K in FrameKindName]: z.input<(typeof FRAME_PAYLOADS)[K]> };
/** One frame to write, typed by its kind. */
export type OutgoingFrame = { [K in FrameKindName]: { kind: K; payload: FramePayloads[K] } }[FrameKindName];
