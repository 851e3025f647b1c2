/**
 * The replicated frame kinds of Update User and Update Connected (docs/peer-protocol.md):
 * their schemas and idempotent apply handlers. The routers write them to peer_outbox in the
 * transaction of the change; these handlers run in the receiver's batch transaction.
 *
 * Nothing applied here is written back to the outbox as the same kind: each cluster sends only
 * what its own clients did, to every peer directly, so nothing echoes.
 */
import { insertUser, type Queryable } from "@pesan/shared/db";
import { isAcceptablePassHash } from "@pesan/shared/protocol";
import { oneByOne, type ApplyContext, type FrameKind } from "./frame-kind.ts";

// The payload schemas are @pesan/shared/replication's (the routers write these kinds too).
import {
  enqueueFrame,
  handOverUndelivered,
  sessionDownPayload,
  sessionDown,
  sessionSnapshot,
  sessionUp,
  userRegister,
  userUnregister,
  type SessionDown,
  type SessionSnapshot,
  type SessionUp,
  type UserRegister,
  type UserUnregister,
} from "@pesan/shared/replication";
export { sessionDown, sessionSnapshot, sessionUp, userRegister, userUnregister };
export type { SessionDown, SessionSnapshot, SessionUp, UserRegister, UserUnregister };

/** One account of a name, as the winner rule sees it. */
export interface Registration {
  createdAt: Date;
  home: string;
}

/**
 * Which of two accounts of one name keeps it: the one registered earlier; at the same instant,
 * the one whose home cluster name is smaller. Every cluster decides the same from the same two,
 * so they all end with one owner. Negative: a wins; positive: b wins; 0: the same account.
 */
export function compareRegistrations(a: Registration, b: Registration): number {
  const d = a.createdAt.getTime() - b.createdAt.getTime();
  if (d !== 0) return d < 0 ? -1 : 1;
  return a.home < b.home ? -1 : a.home > b.home ? 1 : 0;
}

/**
 * Which of two logins of one user is the session now: the later one (`at`, when it was bound);
 * at the same instant, the one in the cluster with the larger name. Positive: a is newer.
 */
export function compareBindings(a: { at: Date; cluster: string }, b: { at: Date; cluster: string }): number {
  const d = a.at.getTime() - b.at.getTime();
  if (d !== 0) return d < 0 ? -1 : 1;
  return a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0;
}

// --- handlers -----------------------------------------------------------------------------

async function applyUserRegister(tx: Queryable, ctx: ApplyContext, d: UserRegister): Promise<void> {
  // Only an account's home registers it: the routers write home = their own cluster, and a
  // bootstrap sends only the accounts homed there. Anything else is a peer speaking for an
  // account of another cluster (with an earlier createdAt it would take the name over).
  if (d.home !== ctx.peer) return ctx.ignore("user.register", "not_home", { user: d.name, home: d.home });
  // A hash is work for every LOGIN of the name here: only the format and scrypt parameters our
  // own routers make pass (parsePassHash), so a peer cannot store one that stalls a LOGIN for
  // seconds or makes scrypt throw. Ignored, not refused with the batch: a legitimate peer with
  // one such hash in its table (its bootstrap sends them all) still replicates everything else.
  if (!isAcceptablePassHash(d.passHash)) return ctx.ignore("user.register", "bad_pass_hash", { user: d.name });
  const incoming = { createdAt: new Date(d.createdAt), home: d.home };
  const gone = await tx.query("SELECT 1 FROM user_tombstones WHERE name = $1 AND created_at = $2", [d.name, incoming.createdAt]);
  if (gone.rowCount > 0) return; // unregistered already (we heard of that first)
  const r = await tx.query<{ pass_hash: string; created_at: Date | string; home_cluster: string }>(
    "SELECT pass_hash, created_at, home_cluster FROM users WHERE name = $1 FOR UPDATE",
    [d.name],
  );
  const cur = r.rows[0];
  if (!cur) {
    await insertUser(tx, { name: d.name, passHash: d.passHash, createdAt: incoming.createdAt, home: d.home }, { ifAbsent: false });
    return;
  }
  const local = { createdAt: new Date(cur.created_at), home: cur.home_cluster };
  const c = compareRegistrations(incoming, local);
  if (c === 0) return; // this very account, seen before
  if (c > 0) {
    // Ours keeps the name; remember the loser so its owner gets ERR TAKEN if they log in here.
    await rememberLoser(tx, d.name, incoming, d.passHash);
    return;
  }
  // The incoming account wins: ours goes, with its session and messages (cascade).
  await rememberLoser(tx, d.name, local, cur.pass_hash);
  const s = await tx.query<{ token: string; cluster: string }>("SELECT token, cluster FROM sessions WHERE user_name = $1", [d.name]);
  const held = s.rows[0];
  if (held && held.cluster === ctx.self) {
    // Our session of the losing account ends: tell the others, in this very transaction.
    await enqueueFrame(tx, "session.down", sessionDownPayload({ user: d.name, token: held.token }, ctx.self, "unregistered", ctx.now));
  }
  await tx.query("DELETE FROM users WHERE name = $1", [d.name]);
  await insertUser(tx, { name: d.name, passHash: d.passHash, createdAt: incoming.createdAt, home: d.home }, { ifAbsent: false });
}

async function rememberLoser(tx: Queryable, name: string, r: Registration, passHash: string): Promise<void> {
  await tx.query("INSERT INTO lost_registrations (name, home, created_at, pass_hash) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", [name, r.home, r.createdAt, passHash]);
}

/**
 * Who may remove an account: its home, or the cluster that holds its session (UNREGISTER is a
 * command of a logged-in client, checked with the password where it was sent: any cluster the
 * user logged in at). Routers write user.unregister before the session's session.down, so
 * the holder's row is still here; the other order (earlier routers) is in unregisteredSessions.
 */
async function mayUnregister(tx: Queryable, ctx: ApplyContext, name: string, home: string): Promise<boolean> {
  if (home === ctx.peer || ctx.unregisteredSessions.has(name)) return true;
  const s = await tx.query("SELECT 1 FROM sessions WHERE user_name = $1 AND cluster = $2", [name, ctx.peer]);
  return s.rowCount > 0;
}

async function applyUserUnregister(tx: Queryable, ctx: ApplyContext, d: UserUnregister): Promise<void> {
  const createdAt = new Date(d.createdAt);
  const acct = await tx.query<{ home_cluster: string }>("SELECT home_cluster FROM users WHERE name = $1 AND created_at = $2 FOR UPDATE", [d.name, createdAt]);
  const home = acct.rows[0]?.home_cluster;
  if (home !== undefined && !(await mayUnregister(tx, ctx, d.name, home))) return ctx.ignore("user.unregister", "not_owner", { user: d.name, home });
  // Not here (yet): only the tombstone, which stops that very account's late user.register.
  await tx.query("INSERT INTO user_tombstones (name, created_at, removed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [d.name, createdAt, new Date(d.at)]);
  // Only that account: a newer registration of the name (here or elsewhere) stays.
  await tx.query("DELETE FROM users WHERE name = $1 AND created_at = $2", [d.name, createdAt]);
}

/**
 * The session of `user` is now held by `cluster` (a login, a resume, or a snapshot entry).
 * Applied only when it is not older than what we have; a local session replaced by another
 * login (another token) gets `BYE replaced` through pending_pushes (the routers publish it).
 */
async function bindRemote(tx: Queryable, ctx: ApplyContext, cluster: string, d: { user: string; token: string; capAck: boolean; at: string; reach?: string | undefined }): Promise<void> {
  const at = new Date(d.at);
  const u = await tx.query("SELECT 1 FROM users WHERE name = $1", [d.user]);
  if (u.rowCount === 0) return;
  const r = await tx.query<{ token: string; cluster: string; gateway: string; addr: string; login_at: Date | string; reach: string }>(
    "SELECT token, cluster, gateway, addr, login_at, reach FROM sessions WHERE user_name = $1 FOR UPDATE",
    [d.user],
  );
  const cur = r.rows[0];
  if (cur) {
    if (cur.cluster === cluster && cur.token === d.token && new Date(cur.login_at).getTime() === at.getTime() && cur.reach === (d.reach ?? "")) return; // already so
    if (compareBindings({ at, cluster }, { at: new Date(cur.login_at), cluster: cur.cluster }) < 0) return; // older news
    if (cur.cluster === ctx.self && cur.gateway !== "") {
      if (cur.token !== d.token) {
        await tx.query("INSERT INTO pending_pushes (gateway, addr, line) VALUES ($1, $2, 'BYE replaced')", [cur.gateway, cur.addr]);
        await tx.query("INSERT INTO connection_log (user_name, event, cluster, gateway, addr, at) VALUES ($1, 'replaced', $2, $3, $4, $5)", [
          d.user,
          ctx.self,
          cur.gateway,
          cur.addr,
          ctx.now,
        ]);
      }
      // Same token: the client resumed in that cluster (failover); the session moves silently.
    }
  }
  await tx.query(
    `INSERT INTO sessions (user_name, token, cluster, gateway, addr, cap_ack, login_at, last_heard, reach) VALUES ($1, $2, $3, '', '', $4, $5, $5, $6)
     ON CONFLICT (user_name) DO UPDATE SET token = EXCLUDED.token, cluster = EXCLUDED.cluster, gateway = '', addr = '',
       cap_ack = EXCLUDED.cap_ack, login_at = EXCLUDED.login_at, last_heard = EXCLUDED.last_heard, reach = EXCLUDED.reach`,
    [d.user, d.token, cluster, d.capAck, at, d.reach ?? ""],
  );
  // The session lives elsewhere now: what only we had for the user goes to every peer.
  await handOverUndelivered(tx, { user: d.user });
}

async function applySessionUp(tx: Queryable, ctx: ApplyContext, d: SessionUp): Promise<void> {
  // A cluster speaks only for its own sessions. (Any cluster may hold any user's session:
  // LOGIN works anywhere, and RESUME moves a session to another cluster at a failover.)
  if (d.cluster !== ctx.peer) return ctx.ignore("session.up", "not_own_session", { user: d.user, cluster: d.cluster });
  await bindRemote(tx, ctx, d.cluster, d);
}

async function applySessionDown(tx: Queryable, ctx: ApplyContext, d: SessionDown): Promise<void> {
  if (d.cluster !== ctx.peer) return ctx.ignore("session.down", "not_own_session", { user: d.user, cluster: d.cluster });
  const r = await tx.query("DELETE FROM sessions WHERE user_name = $1 AND token = $2 AND cluster = $3", [d.user, d.token, d.cluster]);
  if (r.rowCount > 0 && d.reason === "unregistered") ctx.unregisteredSessions.add(d.user);
}

/** The sender's full list of its sessions: rows of that cluster not in it go, the others are bound. */
async function applySessionSnapshot(tx: Queryable, ctx: ApplyContext, d: SessionSnapshot): Promise<void> {
  if (d.cluster !== ctx.peer) return ctx.ignore("session.snapshot", "not_own_session", { cluster: d.cluster });
  await tx.query(
    `DELETE FROM sessions s WHERE s.cluster = $1
       AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS l(u, t) WHERE l.u = s.user_name AND l.t = s.token)`,
    [d.cluster, d.sessions.map((x) => x.user), d.sessions.map((x) => x.token)],
  );
  for (const s of [...d.sessions].sort((a, b) => (a.user < b.user ? -1 : 1))) await bindRemote(tx, ctx, d.cluster, s);
}

export const USER_KINDS = {
  "user.register": { schema: userRegister, applyRun: oneByOne(applyUserRegister) } satisfies FrameKind<UserRegister>,
  "user.unregister": { schema: userUnregister, applyRun: oneByOne(applyUserUnregister) } satisfies FrameKind<UserUnregister>,
};

export const CONNECTED_KINDS = {
  "session.up": { schema: sessionUp, applyRun: oneByOne(applySessionUp) } satisfies FrameKind<SessionUp>,
  "session.down": { schema: sessionDown, applyRun: oneByOne(applySessionDown) } satisfies FrameKind<SessionDown>,
  "session.snapshot": { schema: sessionSnapshot, applyRun: oneByOne(applySessionSnapshot) } satisfies FrameKind<SessionSnapshot>,
};

// --- the sender's side of the periodic refresh ---------------------------------------------

/**
 * Writes a session.snapshot of this cluster's sessions to the outbox. The transaction first
 * takes its id, then waits until every transaction with a smaller id has ended, and only then
 * reads the sessions: so every frame ordered before the snapshot is in it, and every change it
 * does not show has a frame ordered after it. Gives up (false) after waitMs.
 */
export async function writeSnapshot(tx: Queryable, self: string, waitMs: number, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<boolean> {
  const x = await tx.query<{ xid: string }>("SELECT pg_current_xact_id()::text AS xid");
  const xid = x.rows[0]!.xid;
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await tx.query<{ ok: boolean }>("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8 AS ok", [xid]);
    if (r.rows[0]?.ok) break;
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  const s = await tx.query<{ user_name: string; token: string; cap_ack: boolean; login_at: Date | string; addr: string }>(
    "SELECT user_name, token, cap_ack, login_at, addr FROM sessions WHERE cluster = $1 ORDER BY user_name",
    [self],
  );
  const snapshot: SessionSnapshot = {
    cluster: self,
    sessions: s.rows.map((row) => ({ user: row.user_name, token: row.token, capAck: row.cap_ack, at: new Date(row.login_at).toISOString(), ...(row.addr ? { reach: row.addr } : {}) })),
  };
  await enqueueFrame(tx, "session.snapshot", snapshot);
  return true;
}
