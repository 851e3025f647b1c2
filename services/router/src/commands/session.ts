/**
 * The session commands: REGISTER, LOGIN, RESUME (binding a session to an address, with its
 * proof key), CAP, LOGOUT and UNREGISTER. They read and write at once through the batch's
 * transaction (the batch flushed its buffered writes before them) and keep the batch's view
 * up to date.
 */
import { randomBytes } from "node:crypto";
import { formatErr, formatOk, formatOnline, newProofKey, plainSessionAllowed, proofKeyId } from "@pesan/shared/protocol";
import { BIND, UNBIND } from "@pesan/shared/bus";
import { insertUser } from "@pesan/shared/db";
import { isProbeName } from "@pesan/shared/names";
import { enqueueFrame, sessionDownPayload, type SessionDown } from "@pesan/shared/replication";
import { PROTOCOL_ERRORS } from "@pesan/shared/errors";
import type { Batch, ReqCtx } from "../batch/index.ts";
import * as store from "../store.ts";
import type { Session } from "../store.ts";
import { pushMsg } from "./messages.ts";

export function newToken(): string {
  return randomBytes(18).toString("base64url");
}

/**
 * The session's first proof: its address has shown it receives what we send, so what waited
 * for that (the stored messages the amplification bound withheld) goes out now.
 */
export function validated(b: Batch, ctx: ReqCtx, s: Session): void {
  b.writes.bufferProven(s);
  b.writes.afterFlush(async () => {
    const nextPush = new Date(b.now.getTime() + b.settings.resendBaseMs);
    for (const m of await store.takeUndelivered(b.tx, s.user, s.capAck, nextPush, MAX_LOGIN_PUSH_COUNT)) pushMsg(b, ctx, s, m);
  });
}

export async function register(b: Batch, ctx: ReqCtx, user: string): Promise<void> {
  const hash = b.prepared.newHashes.get(ctx.index);
  // Only password-work.ts runs REGISTER, with its hash; a stream batch never hashes.
  if (hash === undefined) throw new Error("REGISTER without a prepared hash");
  if (await insertUser(b.tx, { name: user, passHash: hash, createdAt: b.now, home: b.settings.cluster }, { ifAbsent: true })) {
    await enqueueFrame(b.tx, "user.register", { name: user, passHash: hash, createdAt: b.now.toISOString(), home: b.settings.cluster });
    b.view.markRegistered(user);
    return b.reply(ctx, formatOk("REGISTERED", user));
  }
  b.reply(ctx, formatErr("TAKEN"));
}

export async function login(b: Batch, ctx: ReqCtx, user: string): Promise<void> {
  const verdict = b.prepared.loginVerdicts.get(ctx.index);
  // Re-read the hash under the transaction: the account may have been removed (or removed and
  // registered anew) since the password was checked.
  const current = verdict?.ok ? (await store.passHashes(b.tx, [user])).get(user) : undefined;
  if (verdict?.lost && !verdict.ok) return b.reply(ctx, formatErr("TAKEN", LOST_RACE_TEXT));
  if (!verdict?.ok || current !== verdict.hash) return b.reply(ctx, formatErr("AUTH"));
  if (!(await withinQuota(b, ctx, user)) || !(await withinIpLimit(b, ctx, user))) return;
  const capAck = await store.takePendingCap(b.tx, ctx.in.gateway, ctx.in.addr, b.staleBefore());
  await bind(b, ctx, { user, token: newToken(), cluster: b.settings.cluster, gateway: ctx.in.gateway, addr: ctx.in.addr, capAck, lastHeard: b.now, ...newProof(b, ctx) }, "login");
}

export async function resume(b: Batch, ctx: ReqCtx, user: string, token: string): Promise<void> {
  const cur = await store.sessionOf(b.tx, user);
  if (!cur || cur.token !== token) return b.reply(ctx, formatErr("AUTH", "wrong user name or token, or the session has expired"));
  const moving = cur.cluster !== b.settings.cluster || cur.gateway !== ctx.in.gateway || cur.addr !== ctx.in.addr;
  if (moving && !(await withinIpLimit(b, ctx, user))) return;
  const pendingCap = await store.takePendingCap(b.tx, ctx.in.gateway, ctx.in.addr, b.staleBefore());
  // A session held by another cluster (a client failing over to us) is taken over here.
  await bind(b, ctx, { ...cur, cluster: b.settings.cluster, gateway: ctx.in.gateway, addr: ctx.in.addr, capAck: cur.capAck || pendingCap, lastHeard: b.now, ...newProof(b, ctx) }, "resume");
}

/** Every LOGIN and RESUME issues a new proof key (its counter starts again at 1). */
function newProof(b: Batch, ctx: ReqCtx): { proofKey: string; proofKeyId: string; proven: false; plainOk: boolean } {
  const proofKey = newProofKey();
  return { proofKey, proofKeyId: proofKeyId(proofKey), proven: false, plainOk: plainSessionAllowed(b.settings.plainSessions, ctx.in.addr) };
}

/** One host must not hold all of QUOTA: at most SESSIONS_PER_IP sessions at one IP's addresses. */
async function withinIpLimit(b: Batch, ctx: ReqCtx, user: string): Promise<boolean> {
  const limit = b.settings.sessionsPerIp;
  if (limit <= 0) return true;
  // `ip:` or `[v6]:`: the address without its port.
  const prefix = ctx.in.addr.slice(0, ctx.in.addr.lastIndexOf(":") + 1);
  if ((await store.countSessionsFromIp(b.tx, b.settings.cluster, prefix, user)) < limit) return true;
  b.reply(ctx, formatErr("RATE_LIMITED", `too many sessions from your IP address (at most ${limit})`));
  return false;
}

async function withinQuota(b: Batch, ctx: ReqCtx, user: string): Promise<boolean> {
  const quota = b.settings.quota;
  // A probe account takes no place of QUOTA (countOnline leaves it out), so it needs none: the
  // monitor's messaging probe still measures a full server.
  if (quota <= 0 || isProbeName(user) || (await store.countOnline(b.tx, b.settings.cluster, user)) < quota) return true;
  const others = (await store.servers(b.tx)).filter((x) => !x.isSelf && x.active).map((x) => x.address);
  b.reply(ctx, formatErr("FULL", others.length > 0 ? others.join(" ") : `${PROTOCOL_ERRORS.FULL} again later (no other server is up)`));
  return false;
}

/**
 * Binds the user's one session to this endpoint: the previous holder of the user's session
 * (another address) gets `BYE replaced`, and so does another user's session at this address.
 * Then the login pushes: the online list and every undelivered message.
 */
async function bind(b: Batch, ctx: ReqCtx, bound: Session & { proofKey: string }, event: "login" | "resume"): Promise<void> {
  const { proofKey, ...s } = bound;
  const cluster = b.settings.cluster;
  const previous = await store.sessionOf(b.tx, s.user);
  // A session held by another cluster is ended there: that cluster pushes `BYE replaced` when
  // our session.up reaches it.
  if (previous && previous.cluster === cluster && (previous.gateway !== s.gateway || previous.addr !== s.addr) && event === "login") {
    b.push(ctx, previous, "BYE replaced");
    unbind(b, ctx, previous);
    await store.logConnection(b.tx, s.user, "replaced", cluster, previous.gateway, previous.addr, b.now);
  }
  const squatter = await store.sessionAt(b.tx, s.gateway, s.addr);
  if (squatter && squatter.user !== s.user) {
    await store.deleteSession(b.tx, squatter.user);
    await store.logConnection(b.tx, squatter.user, "replaced", cluster, squatter.gateway, squatter.addr, b.now);
    await sessionDown(b, squatter, "replaced");
    b.view.removeSession(squatter.user);
  }
  await store.upsertSession(b.tx, s, cluster, b.now);
  await store.logConnection(b.tx, s.user, event, cluster, s.gateway, s.addr, b.now);
  // reach: where a survivor may send REDIRECT should this cluster die (docs/peer-protocol.md).
  await enqueueFrame(b.tx, "session.up", { user: s.user, token: s.token, cluster, capAck: s.capAck, at: b.now.toISOString(), reach: s.addr });
  b.view.setSession(s);
  ctx.session = s;
  // The gateway learns the key first (same stream, in order), so it can check the proofs that
  // follow the reply; the key goes to the client only in the reply, to this address.
  b.push(ctx, s, `${BIND}${s.proofKeyId} ${proofKey} ${s.plainOk ? 1 : 0}`);
  b.reply(ctx, formatOk("LOGIN", s.user, s.token, proofKey));
  for (const line of formatOnline(await store.onlineUsers(b.tx, b.settings.cluster))) b.push(ctx, s, line);
  // Where the session may not act without proofs, its stored messages wait for the first
  // proof (validated()). Elsewhere they go now, within the gateway's amplification bound: a
  // MSG it withholds comes back as undelivered and is offered again.
  if (!s.plainOk) return;
  const nextPush = new Date(b.now.getTime() + b.settings.resendBaseMs);
  for (const m of await store.takeUndelivered(b.tx, s.user, s.capAck, nextPush, MAX_LOGIN_PUSH_COUNT)) pushMsg(b, ctx, s, m);
}

/** Tells the gateway holding the session's address that the session there ended. */
function unbind(b: Batch, ctx: ReqCtx, s: Session): void {
  if (s.gateway !== "") b.push(ctx, s, UNBIND);
}

const MAX_LOGIN_PUSH_COUNT = 1000;

/** CAP ACK: with a session, at once; before LOGIN, remembered for the login at this address. */
export async function cap(b: Batch, ctx: ReqCtx, s: Session | undefined): Promise<void> {
  if (s) {
    s.capAck = true;
    await store.setCapAck(b.tx, s.user);
  } else await store.rememberPendingCap(b.tx, ctx.in.gateway, ctx.in.addr, b.now);
  b.reply(ctx, formatOk("CAP", "ACK"));
}

export async function logout(b: Batch, ctx: ReqCtx, s: Session): Promise<void> {
  await store.deleteSession(b.tx, s.user);
  await store.logConnection(b.tx, s.user, "logout", b.settings.cluster, ctx.in.gateway, ctx.in.addr, b.now);
  await sessionDown(b, s, "logout");
  b.view.removeSession(s.user);
  b.reply(ctx, formatOk("BYE"));
  unbind(b, ctx, s);
}

export async function unregister(b: Batch, ctx: ReqCtx, s: Session): Promise<void> {
  // Checked before the transaction (password-work.ts); the account must still be the one
  // checked: same user at this address, same hash.
  const verdict = b.prepared.unregisterVerdicts.get(ctx.index);
  const current = verdict?.ok && verdict.user === s.user ? (await store.passHashes(b.tx, [s.user])).get(s.user) : undefined;
  if (!verdict?.ok || verdict.user !== s.user || current !== verdict.hash) return b.reply(ctx, formatErr("AUTH", "wrong password"));
  const createdAt = await store.deleteUser(b.tx, s.user, b.now);
  // Before the session.down: a peer accepts the removal of an account homed elsewhere only
  // from the cluster it sees holding the user's session (peer-sync kinds.ts), so that row
  // must still be there when this frame applies.
  if (createdAt) await enqueueFrame(b.tx, "user.unregister", { name: s.user, createdAt: createdAt.toISOString(), at: b.now.toISOString() });
  await store.logConnection(b.tx, s.user, "unregistered", b.settings.cluster, ctx.in.gateway, ctx.in.addr, b.now);
  await sessionDown(b, s, "unregistered");
  unbind(b, ctx, s);
  b.view.forgetUser(s.user);
  b.reply(ctx, formatOk("UNREGISTERED"));
}

/** Text of `ERR TAKEN` for a password of an account that lost a registration race. */
// Short: it goes to an address that may not have shown it receives (3x what it sent, at most).
export const LOST_RACE_TEXT = "registered first on another server; pick another name";

/** Tells the other clusters that a session held here ended (written in the same transaction). */
async function sessionDown(b: Batch, s: Session, reason: SessionDown["reason"]): Promise<void> {
  await enqueueFrame(b.tx, "session.down", sessionDownPayload(s, b.settings.cluster, reason, b.now));
}
