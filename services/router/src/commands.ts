/**
 * Every command of the client protocol for one cluster. Each handler reads and writes through
 * the batch (its per-batch view and buffered writes) and answers with reply()/push().
 */
import { randomBytes } from "node:crypto";
import {
  formatErr,
  formatItem,
  formatMsg,
  formatOk,
  formatOnline,
  formatServer,
  HEARTBEAT_REPLY,
  newProofKey,
  plainSessionAllowed,
  proofKeyId,
  type Request,
} from "@pesan/shared/protocol";
import { BIND, UNBIND } from "@pesan/shared/bus";
import { insertUser } from "@pesan/shared/db";
import { isProbeName } from "@pesan/shared/names";
import { enqueueFrame, sessionDownPayload, type SessionDown } from "@pesan/shared/replication";
import { PROTOCOL_ERRORS } from "@pesan/shared/errors";
import type { Batch, ReqCtx } from "./batch/index.ts";
import { decideRoute } from "./route.ts";
import * as store from "./store.ts";
import type { Session, StoredMessage } from "./store.ts";

/** Commands that work without a session. */
const NO_SESSION = new Set<Request["cmd"]>(["REGISTER", "LOGIN", "RESUME", "CAP", "SERVERS", "LIVE"]);
/** Commands that only buffer writes; everything else first flushes them (it may read messages). */
const FAST = new Set<Request["cmd"]>(["SEND", "ACK", "LIVE", "CAP", "ALL", "PING"]);

export function newToken(): string {
  return randomBytes(18).toString("base64url");
}

export async function runCommands(b: Batch): Promise<void> {
  for (const ctx of b.reqs) {
    const req = ctx.req;
    if (!req) continue;
    if (!FAST.has(req.cmd)) await b.writes.flush();
    const at = await b.view.sessionAt(ctx.in.gateway, ctx.in.addr);
    const s = sessionOf(b, ctx, req, at);
    if (s === "refused") continue;
    if (!s && !NO_SESSION.has(req.cmd)) {
      b.reply(ctx, formatErr("NOT_LOGGED_IN", at ? notInSessionText(at) : PROTOCOL_ERRORS.NOT_LOGGED_IN));
      continue;
    }
    if (s) ctx.session = s;
    await handle(b, ctx, req, s);
  }
  await b.finish();
}

/** Text of the reply to a datagram with a proof that no session here at its address holds. */
export const PROOF_INVALID_TEXT = "proof not valid for this address; RESUME";

/**
 * The session a request acts in (docs/protocol.md "Security"): the one bound at its address,
 * if the datagram carries that session's proof, or carries none where the session may go on
 * without (a plain session PLAIN_SESSIONS allows, never a proven one). "refused" when it has
 * been answered already.
 */
function sessionOf(b: Batch, ctx: ReqCtx, req: Request, at: Session | undefined): Session | undefined | "refused" {
  if (ctx.in.proof !== undefined) {
    if (!at || at.proofKeyId !== ctx.in.proof) {
      b.reply(ctx, formatErr("NOT_LOGGED_IN", PROOF_INVALID_TEXT));
      return "refused";
    }
    if (!at.proven) validated(b, ctx, at);
    return at;
  }
  if (!at || (!at.proven && at.plainOk)) return at;
  // A plain datagram at a proof session's address: anyone could have sent it. It must not
  // act in the session or evict it: a plain LOGIN there, or a RESUME of another account, would.
  // A RESUME of this session's own user is let through: its token went only to this address,
  // and it is how the client re-binds after its gateway restarted and forgot the key.
  if (at.proven && (req.cmd === "LOGIN" || (req.cmd === "RESUME" && req.user !== at.user))) {
    b.reply(ctx, formatErr("AUTH", "a proof session holds this address; send with its proof, or RESUME from another address"));
    return "refused";
  }
  return undefined;
}

function notInSessionText(at: Session): string {
  return at.proven ? "this session needs a proof on every datagram" : "proofs required from this address (PLAIN_SESSIONS)";
}

/**
 * The session's first proof: its address has shown it receives what we send, so what waited
 * for that (the stored messages the amplification bound withheld) goes out now.
 */
function validated(b: Batch, ctx: ReqCtx, s: Session): void {
  b.writes.bufferProven(s);
  b.writes.afterFlush(async () => {
    const nextPush = new Date(b.now.getTime() + b.settings.resendBaseMs);
    for (const m of await store.takeUndelivered(b.tx, s.user, s.capAck, nextPush, MAX_LOGIN_PUSH_COUNT)) pushMsg(b, ctx, s, m);
  });
}

async function handle(b: Batch, ctx: ReqCtx, req: Request, s: Session | undefined): Promise<void> {
  switch (req.cmd) {
    case "LIVE":
      return b.reply(ctx, HEARTBEAT_REPLY);
    case "PING":
      // Like IRC's PING, but it needs a session: a client learns its session is still bound
      // to the address it sends from (after a load balancer moved it, it is not).
      return b.reply(ctx, formatOk("PONG"));
    case "REGISTER":
      return register(b, ctx, req.user);
    case "LOGIN":
      return login(b, ctx, req.user);
    case "RESUME":
      return resume(b, ctx, req.user, req.token);
    case "CAP":
      if (s) {
        s.capAck = true;
        await store.setCapAck(b.tx, s.user);
      } else await store.rememberPendingCap(b.tx, ctx.in.gateway, ctx.in.addr, b.now);
      return b.reply(ctx, formatOk("CAP", "ACK"));
    case "SERVERS":
      return servers(b, ctx);
    case "SEND":
      return send(b, ctx, s!, req.to, req.text);
    case "ALL":
      return broadcast(b, ctx, s!, req.text);
    case "ACK":
      b.writes.bufferAck(req.id, s!.user);
      return;
    case "WHO": {
      const users = await store.onlineUsers(b.tx, b.settings.cluster);
      for (const line of formatOnline(users, ctx.tag)) b.replyTagged(ctx, line);
      return b.reply(ctx, formatOk("WHO", users.length));
    }
    case "INBOX": {
      const items = await store.inbox(b.tx, s!.user, b.settings.inboxLimit);
      for (const m of items) b.reply(ctx, formatItem(m.id, m.sender, m.sentAt, m.read, m.body));
      return b.reply(ctx, formatOk("INBOX", items.length));
    }
    case "READ": {
      const m = await store.readMessage(b.tx, s!.user, req.id);
      return b.reply(ctx, m ? formatMsg(m.id, m.sender, m.sentAt, m.body) : formatErr("NO_SUCH_MESSAGE"));
    }
    case "DELETE":
      return b.reply(ctx, (await store.deleteMessage(b.tx, s!.user, req.id, b.now)) ? formatOk("DELETED", req.id) : formatErr("NO_SUCH_MESSAGE"));
    case "LOGOUT":
      await store.deleteSession(b.tx, s!.user);
      await store.logConnection(b.tx, s!.user, "logout", b.settings.cluster, ctx.in.gateway, ctx.in.addr, b.now);
      await sessionDown(b, s!, "logout");
      b.view.removeSession(s!.user);
      b.reply(ctx, formatOk("BYE"));
      return unbind(b, ctx, s!);
    case "UNREGISTER":
      return unregister(b, ctx, s!);
  }
}

async function register(b: Batch, ctx: ReqCtx, user: string): Promise<void> {
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

async function login(b: Batch, ctx: ReqCtx, user: string): Promise<void> {
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

async function resume(b: Batch, ctx: ReqCtx, user: string, token: string): Promise<void> {
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

function pushMsg(b: Batch, ctx: ReqCtx, to: Session, m: StoredMessage): void {
  b.push(ctx, to, formatMsg(m.id, m.sender, m.sentAt, m.body));
}

async function send(b: Batch, ctx: ReqCtx, s: Session, to: string, text: string): Promise<void> {
  const repeated = b.once.repeated(ctx, s);
  if (repeated === "in-batch") return;
  if (repeated !== undefined) {
    b.reply(ctx, repeated.reply);
    // The stored reply names this very request's message: this is our own stream entry again,
    // taken over after a router died between COMMIT and publishing. Its push may never have
    // gone out, so push again (clients drop a MSG id they already have); a client's retry has
    // a different entry and so a different id, and is not pushed twice.
    if (repeated.messageId === ctx.in.msgId) await pushStored(b, ctx, ctx.in.msgId, to);
    return;
  }
  if (!(await b.view.userExistsNamed(to))) return b.reply(ctx, formatErr("NO_SUCH_USER", `no such user: ${to}`));
  const id = ctx.in.msgId;
  const self = b.settings.cluster;
  const session = await b.view.sessionOfUser(to);
  const remote = session !== undefined && session.cluster !== self;
  const linked = session?.cluster === self ? false : await b.view.linked();
  const where = decideRoute(self, session, linked, remote && linked ? await b.view.clusterUp(session.cluster) : false);
  const target = where.kind === "local" ? where.session : undefined;
  const capAck = target?.capAck === true;
  // Only a message that stays undelivered takes a place in the box (a plain session's push
  // counts as delivered at once). Refused before anything is stored, so a retry may succeed.
  if ((target === undefined || capAck) && !(await b.view.boxTakes(to))) return b.reply(ctx, formatErr("BOX_FULL", `${to}'s box is full (${b.settings.boxLimit} undelivered messages); try again after they log in`));
  if (target) pushMsg(b, ctx, target, { id, sender: s.user, recipient: to, sentAt: b.now, body: text, read: false });
  // Not delivered here at once (offline, or online in another cluster): every other cluster
  // gets a copy (message.new), so it is delivered wherever the recipient is or logs in; the
  // cluster that holds the session pushes it. See docs/peer-protocol.md.
  const replicate = where.kind !== "local" && where.linked;
  b.writes.bufferSend(
    ctx,
    {
      id,
      sentAt: b.now,
      sender: s.user,
      recipient: to,
      body: text,
      delivered: target !== undefined && !capAck,
      pushAttempts: target ? 1 : 0,
      nextPushAt: capAck ? new Date(b.now.getTime() + b.settings.resendBaseMs) : null,
      replicated: replicate,
    },
    s.token,
    replicate ? { kind: "message.new", payload: { id, sentAt: b.now.toISOString(), sender: s.user, recipient: to, body: text } } : undefined,
  );
  ctx.reply = formatOk("SENT", id, where.kind === "stored" ? "STORED" : "DELIVERED");
  b.reply(ctx, ctx.reply);
}

async function pushStored(b: Batch, ctx: ReqCtx, id: string, to: string): Promise<void> {
  const target = local(b, await b.view.sessionOfUser(to));
  const m = target ? await store.messageById(b.tx, id) : undefined;
  if (target && m) pushMsg(b, ctx, target, m);
}

/**
 * To every online user but the sender; never stored, so never offered again. The other
 * clusters get one `broadcast` frame and push it to their own sessions; the count includes
 * the sessions this cluster knows they hold (the sessions table, kept by peer-sync).
 */
async function broadcast(b: Batch, ctx: ReqCtx, s: Session, text: string): Promise<void> {
  const id = ctx.in.msgId;
  const self = b.settings.cluster;
  let n = 0;
  for (const t of await store.localSessions(b.tx, self)) {
    // A probe account is no user: it gets no broadcast and is not counted.
    if (t.user === s.user || t.gateway === "" || isProbeName(t.user)) continue;
    b.push(ctx, t, formatMsg(id, `*${s.user}`, b.now, text));
    n++;
  }
  if (await b.view.linked()) {
    b.writes.bufferFrame({ kind: "broadcast", payload: { id, sentAt: b.now.toISOString(), sender: s.user, body: text } });
    n += await store.countRemoteOnline(b.tx, self, s.user);
  }
  b.reply(ctx, formatOk("SENT", "ALL", n));
}

async function servers(b: Batch, ctx: ReqCtx): Promise<void> {
  const rows = await store.servers(b.tx);
  const online = await store.countOnline(b.tx, b.settings.cluster);
  if (!rows.some((r) => r.isSelf)) b.reply(ctx, formatServer(b.settings.cluster, b.settings.publicAddress, true, online, b.settings.quota));
  for (const r of rows) {
    if (r.isSelf) b.reply(ctx, formatServer(r.name, r.address, true, online, b.settings.quota));
    else b.reply(ctx, formatServer(r.name, r.address, r.active, r.online, r.quota));
  }
  b.reply(ctx, formatOk("SERVERS", rows.some((r) => r.isSelf) ? rows.length : rows.length + 1));
}

async function unregister(b: Batch, ctx: ReqCtx, s: Session): Promise<void> {
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

/** The session if this cluster holds it (has its endpoint); another cluster's is not pushed to. */
function local(b: Batch, s: Session | undefined): Session | undefined {
  return s && s.cluster === b.settings.cluster ? s : undefined;
}

/** Tells the other clusters that a session held here ended (written in the same transaction). */
async function sessionDown(b: Batch, s: Session, reason: SessionDown["reason"]): Promise<void> {
  await enqueueFrame(b.tx, "session.down", sessionDownPayload(s, b.settings.cluster, reason, b.now));
}
