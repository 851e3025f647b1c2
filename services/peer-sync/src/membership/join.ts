/**
 * A join by invite, both ends (docs/peer-protocol.md, "Joining by invite"). The newcomer signs
 * its request with the invite's MAC key (the invite secret never travels); the issuer checks
 * and applies it in one transaction, tells every member (member.join), and answers, signed
 * with the same key, with every member the newcomer is to link with.
 */
import type { Db } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import { enqueueFrame } from "@pesan/shared/replication";
import { Backoff } from "@pesan/shared/retry";
import { isClusterName } from "@pesan/shared/names";
import { nonceExpiry, type ReplayGuard } from "../auth.ts";
import { PeerCallError, PeerClient, type Signer } from "../client.ts";
import type { PeerSyncMetrics } from "../metrics.ts";
import { HEADERS, NONCE_RE, signedHeaders, signJoinRequest, signJoinResponse, verifyJoinRequest, verifyJoinResponse } from "../signing.ts";
import { checkInvite, JOIN_PATH, joinAnswer, joinBody, nameTaken, type AnswerMember, type JoinRefusal, type MemberInfo } from "./checks.ts";
import * as members from "./store.ts";
import { inviteMacKey, type Invite } from "./token.ts";

export interface JoinRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** What the endpoint sends: the exact text (the signature covers it) and, when accepted, its signature. */
export interface JoinReply {
  status: number;
  text: string;
  signature?: string;
}

export interface JoinDeskDeps {
  db: Db;
  logger: Logger;
  metrics: PeerSyncMetrics;
  self: string;
  /** This cluster as the newcomer is to know it. */
  selfInfo: () => MemberInfo;
  staticPeers: ReadonlySet<string>;
  /** The clusters linked now (PEERS and members): the answer lists those a newcomer can link with. */
  linked: () => string[];
  windowMs: number;
  /** The links' nonce store (peer_nonces): a join request is accepted once, like any signed request. */
  replay: ReplayGuard;
  clock: () => Date;
  /** After the commit: link the newcomer now rather than at the next notification. */
  onJoined: (name: string) => void;
}

const header = (h: JoinRequest["headers"], name: string): string | undefined => {
  const v = h[name];
  return typeof v === "string" ? v : undefined;
};

/** The issuer's side: POST /v1/join. */
export class JoinDesk {
  private readonly d: JoinDeskDeps;

  constructor(d: JoinDeskDeps) {
    this.d = d;
  }

  private refuse(status: number, reason: JoinRefusal, claimed: string | undefined, message: string): JoinReply {
    this.d.metrics.refused.inc({ reason: reason === "bad_signature" || reason === "clock_skew" || reason === "replay" ? reason : reason === "bad_request" ? "missing_auth" : "bad_invite" });
    this.d.logger.warn({ claimed: claimed?.slice(0, 32) ?? null, reason }, `join refused: ${message}`);
    return { status, text: JSON.stringify({ error: reason, message }) };
  }

  async handle(req: JoinRequest): Promise<JoinReply> {
    const from = header(req.headers, HEADERS.from);
    const to = header(req.headers, HEADERS.to);
    const ts = header(req.headers, HEADERS.timestamp);
    const nonce = header(req.headers, HEADERS.nonce);
    const inviteId = header(req.headers, HEADERS.invite);
    const signature = header(req.headers, HEADERS.signature);
    if (!from || !to || !ts || !nonce || !inviteId || !signature || !isClusterName(from) || !/^\d{1,16}$/.test(ts) || !NONCE_RE.test(nonce) || inviteId.length > 64) {
      return this.refuse(401, "bad_request", from, "not a signed join request (x-pesan-* headers missing or malformed)");
    }
    if (to !== this.d.self) return this.refuse(403, "bad_request", from, `this server is ${this.d.self}, not ${JSON.stringify(to.slice(0, 32))}`);
    let body;
    try {
      body = joinBody.parse(JSON.parse(req.body.toString("utf8")));
    } catch {
      return this.refuse(400, "bad_request", from, "the body is not a v1 join request");
    }
    if (body.server.name !== from) return this.refuse(400, "bad_request", from, `server.name ${body.server.name} is not the sender ${from}`);
    const now = this.d.clock();
    const timestamp = Number(ts);
    const parts = { method: req.method, path: req.path, from, to, timestamp, nonce, body: req.body };
    const outcome = await this.d.db.withTransaction(async (tx): Promise<{ refused: JoinReply } | { macKey: string; again: boolean; members: AnswerMember[] }> => {
      const row = await members.lockInvite(tx, inviteId);
      // One answer for "no such invite" and "wrong secret" would hide which invites exist; the
      // id is not secret (it is in the logs), so the two are told apart for the operator.
      if (!row) return { refused: this.refuse(403, "unknown_invite", from, "no invite with this id here") };
      if (!verifyJoinRequest(row.mac_key, parts, signature)) return { refused: this.refuse(401, "bad_signature", from, "bad signature (not the invite's secret)") };
      if (Math.abs(now.getTime() - timestamp) > this.d.windowMs) return { refused: this.refuse(401, "clock_skew", from, `timestamp is ${now.getTime() - timestamp} ms off this server's clock`) };
      // Only once the MAC proved the sender holds the invite's secret (a forger cannot fill the
      // nonce store), keyed by the name the invite is for: a captured request sent again within
      // the window is refused, as on the links. The newcomer's own retries sign a fresh nonce.
      // In this transaction: a flood of joins each holding one connection and waiting for
      // another could drain the pool; and a join that fails (rolled back) may be sent again.
      if (!(await this.d.replay.firstUse(from, nonce, nonceExpiry(timestamp, this.d.windowMs), tx))) {
        return { refused: this.refuse(401, "replay", from, "this join request was already received (replayed nonce)") };
      }
      const check = checkInvite(row, from, body.server.publicKey, await members.lockMembership(tx, from), now);
      if (!check.ok) return { refused: this.refuse(check.status, check.reason, from, check.message) };
      if (!check.again) {
        const active = new Set((await members.activeMembers(tx)).map((m) => m.name));
        const taken = nameTaken(from, { self: this.d.self, staticPeers: this.d.staticPeers, activeMembers: active });
        if (taken) return { refused: this.refuse(409, "name_taken", from, taken) };
        await members.markInviteUsed(tx, row.id, now);
        await members.recordMember(tx, body.server, this.d.self, now, row.id);
        // Every other member links with it too (in this transaction: the join exists if and only
        // if the news of it does). The newcomer, sent it as well, ignores news of itself. The
        // name's revoked memberships go with it: a member that has not had their revokes yet
        // must not take an older join, delivered later, for a live one (order.ts).
        await enqueueFrame(tx, "member.join", { ...body.server, invite: row.id, revoked: await members.revokedInvites(tx, from) });
      }
      const others = await members.linkableServers(tx, this.d.linked(), from);
      return { macKey: row.mac_key, again: check.again, members: [this.d.selfInfo(), ...others] };
    });
    if ("refused" in outcome) return outcome.refused;
    const log = { member: from, syncUrl: body.server.syncUrl, address: body.server.address, invite: inviteId, members: outcome.members.map((m) => m.name) };
    if (outcome.again) this.d.logger.info(log, "join asked again by the cluster it admitted (its answer was lost): answered again, nothing changed");
    else {
      this.d.logger.info(log, "cluster joined by invite");
      this.d.onJoined(from);
    }
    const text = JSON.stringify({ v: 1, kind: "members", members: outcome.members });
    return { status: 200, text, signature: signJoinResponse(outcome.macKey, { status: 200, from: this.d.self, to: from, nonce, body: text }) };
  }
}

/** The newcomer's signer: the invite's key, the join labels, and the invite's id in a header. Exported for tests that forge joins. */
export function joinSigner(inviteId: string): Signer {
  return {
    headers: (key, p) => ({ ...signedHeaders(key, p), [HEADERS.signature]: signJoinRequest(key, p), [HEADERS.invite]: inviteId }),
    verify: verifyJoinResponse,
  };
}

export interface JoinOptions {
  db: Db;
  logger: Logger;
  self: MemberInfo;
  invite: Invite;
  timeoutMs: number;
  ca?: Buffer;
  clock?: () => Date;
  /** How long an unreachable issuer is retried before start-up fails. */
  giveUpMs?: number;
}

/** A join refused by the issuer (a bad, expired, used or renamed invite): start-up fails with it. */
export class JoinRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JoinRefusedError";
  }
}

/** Whether a failed join is worth sending again: no answer, or one saying "later" (429, 5xx). Any other refusal is final. */
export function joinRetryable(e: unknown): boolean {
  if (!(e instanceof PeerCallError)) return true;
  if (e.kind !== "refused") return true;
  return e.status === 429 || (e.status !== undefined && e.status >= 500);
}

/**
 * The newcomer's side, at start: unless it already joined with this invite (a restart), asks
 * to join and records every member of the answer. No answer (the issuer restarting, or its
 * answer lost after it accepted: the issuer answers the same newcomer again, checks.ts) and
 * "later" (429, 503) are retried with backoff until `giveUpMs`; any other refusal is final.
 * Another invite than the one it joined with is a rejoin (after a revoke): the links of the
 * answer start afresh (bootstrapped again), as for a first join.
 */
export async function joinByInvite(o: JoinOptions): Promise<"joined" | "member already"> {
  const { invite } = o;
  const joined = await members.joinedWith(o.db);
  // Joined before migration 015 recorded the invite: a member of its issuer is joined.
  if (joined === invite.id || (joined === null && (await members.isMember(o.db, invite.issuer)))) return "member already";
  const clock = o.clock ?? (() => new Date());
  const client = new PeerClient({
    self: o.self.name,
    peer: invite.issuer,
    baseUrl: invite.syncUrl,
    key: inviteMacKey(invite),
    timeoutMs: o.timeoutMs,
    clock: () => clock().getTime(),
    signer: joinSigner(invite.id),
    ...(o.ca ? { ca: o.ca } : {}),
  });
  const backoff = new Backoff({ minMs: 200, maxMs: 1000 });
  const deadline = Date.now() + (o.giveUpMs ?? 30_000);
  let raw: unknown;
  try {
    for (;;) {
      try {
        // A fresh nonce each time (the client signs each post anew): a retry is no replay.
        raw = await client.post(JOIN_PATH, { v: 1, kind: "join", server: o.self });
        break;
      } catch (e) {
        if (!joinRetryable(e)) throw new JoinRefusedError(`JOIN: ${invite.issuer} refused the join: ${(e as Error).message}`);
        if (Date.now() >= deadline) throw new Error(`JOIN: ${invite.issuer} at ${invite.syncUrl} did not answer the join: ${(e as Error).message}`);
        o.logger.warn({ issuer: invite.issuer, syncUrl: invite.syncUrl, err: (e as Error).message }, "join: no answer from the issuer yet, trying again");
        await new Promise((r) => setTimeout(r, backoff.next()));
      }
    }
  } finally {
    client.close();
  }
  const answer = joinAnswer.safeParse(raw);
  if (!answer.success || !answer.data.members.some((m) => m.name === invite.issuer)) throw new Error(`JOIN: ${invite.issuer}'s answer is not a v1 member list`);
  const now = clock();
  const list = answer.data.members.filter((m) => m.name !== o.self.name);
  await o.db.withTransaction(async (tx) => {
    for (const m of list) {
      // A rejoin: the old link rows (cursor, bootstrapped) go, so each link starts as new (a
      // PEERS peer's link is the operator's: it stays).
      if (!(await members.isStaticPeer(tx, m.name))) await members.forgetLink(tx, m.name);
      await members.recordMember(tx, m, invite.issuer, now, m.invite ?? null);
    }
    await members.setJoinedWith(tx, invite.id);
  });
  o.logger.info({ issuer: invite.issuer, members: list.map((m) => m.name), invite: invite.id, rejoin: joined !== null }, "joined the federation by invite");
  return "joined";
}
