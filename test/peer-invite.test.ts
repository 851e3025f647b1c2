/**
 * A cluster joins the federation with one invite (services/peer-sync/README.md, "Three
 * clusters: the third joins by invite"): a and b linked by PEERS; c has no PEERS, only
 * JOIN=<token from a>. Forged, expired, reused and renamed invites are refused with nothing
 * applied; a join whose answer is lost is answered again on retry; `revoke c` on b cuts c off
 * everywhere, and neither an older member.join delivered after it nor an older revoke after a
 * rejoin (a new invite) undoes it; restarts need no token; /v1/join is rate limited.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { freePorts, ServiceProcess } from "@pesan/cluster";
import { PeerClient } from "../services/peer-sync/src/client.ts";
import { JOIN_PATH } from "../services/peer-sync/src/membership/checks.ts";
import { joinSigner } from "../services/peer-sync/src/membership/join.ts";
import { generateKeyPair, pairKey } from "../services/peer-sync/src/membership/keys.ts";
import { decodeInvite, encodeInvite, inviteMacKey, type Invite } from "../services/peer-sync/src/membership/token.ts";
import { newNonce, signedHeaders } from "../services/peer-sync/src/signing.ts";
import { PATHS } from "../services/peer-sync/src/frames.ts";
import { eventually, serversAt, useLinkedClusters, type LinkedCluster } from "./support/clusters.ts";
import { ID, loginClient, sentId } from "./support/e2e.ts";

const NAMES = ["a", "b", "c"];
const fx = useLinkedClusters({ names: NAMES, unlinked: ["c"], start: ["a", "b"], intervalMs: 200, env: { OUTBOX_POLL_MS: "50", SNAPSHOT_INTERVAL_MS: "2000" } });
const { sql } = fx;
const MAIN = join(__dirname, "../services/peer-sync/src/main.ts");

/** Runs `main.ts <args>` with a cluster's peer-sync configuration, as its operator would. */
function cli(c: LinkedCluster, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...c.peerSync.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    p.once("error", reject);
    p.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

async function invite(at: string, name: string, ttl = "1h"): Promise<string> {
  const r = await cli(fx.lc.get(at), ["invite", "--name", name, "--ttl", ttl]);
  expect(r).toMatchObject({ code: 0 });
  const token = r.stdout.trim();
  expect(token).toMatch(/^pesan-invite-v1\.[A-Za-z0-9_-]+$/);
  // Logged: the invite's id, never its token or secret.
  expect(r.stderr).toContain("invite issued");
  expect(r.stderr).not.toContain(decodeInvite(token).ok ? (decodeInvite(token) as { invite: Invite }).invite.secret : token);
  return token;
}

const inviteOf = (token: string): Invite => {
  const d = decodeInvite(token);
  if (!d.ok) throw new Error(d.error);
  return d.invite;
};

let cEnv: Record<string, string> | undefined;
/** c's peer-sync with these settings added to the ones it was made with (JOIN, SERVER_NAME). */
function cProcess(env: Record<string, string>): ServiceProcess {
  const c = fx.lc.get("c");
  cEnv ??= { ...c.peerSync.env };
  const p = new ServiceProcess("peer-sync", "peer-sync-c", { ...cEnv, ...env }, c.peerSync.httpPort, undefined, join(fx.lc.logDir, "peer-sync-c.log"));
  c.peerSync = p;
  return p;
}

/** Starts c with a JOIN that must be refused: the process exits, saying why. */
async function refusedStart(env: Record<string, string>): Promise<string> {
  const p = cProcess(env);
  p.start();
  const e = await p.waitReady(20_000).then(
    () => undefined,
    (err: Error) => err,
  );
  expect(e?.message).toMatch(/exited during start-up/);
  expect(await p.exited).not.toBe(0);
  return e!.message;
}

/** What a refused join must leave: no member anywhere, no row for c, the invite unused. */
async function nothingApplied(inviteId?: string): Promise<void> {
  for (const at of NAMES) {
    expect(await sql(at, "SELECT name FROM peer_members")).toEqual([]);
    expect(await sql(at, "SELECT name FROM server_list WHERE name = 'c' AND NOT is_self")).toEqual([]);
    expect(await sql(at, "SELECT peer FROM peer_links WHERE peer = 'c'")).toEqual([]);
  }
  if (inviteId) expect(await sql("a", "SELECT used_at FROM peer_invites WHERE id = $1", [inviteId])).toEqual([{ used_at: null }]);
  expect(await sql("a", "SELECT count(*)::int AS n FROM peer_outbox WHERE kind LIKE 'member.%'")).toEqual([{ n: 0 }]);
}

/** A join request as a newcomer sends it, signed under an invite: for forgeries the process would refuse to send. */
async function postJoin(inv: Invite, from: string, server?: { name: string; syncUrl: string; address: string; publicKey: string }): Promise<{ status: number; error: string; members?: string[] }> {
  const client = new PeerClient({ self: from, peer: inv.issuer, baseUrl: inv.syncUrl, key: inviteMacKey(inv), timeoutMs: 5000, signer: joinSigner(inv.id) });
  try {
    const answer = (await client.post(JOIN_PATH, { v: 1, kind: "join", server: server ?? { name: from, syncUrl: "http://127.0.0.1:1", address: "127.0.0.1:1", publicKey: generateKeyPair().publicKey } })) as { members: Array<{ name: string }> };
    return { status: 200, error: "", members: answer.members.map((m) => m.name) };
  } catch (e) {
    const m = /^HTTP (\d+) \((\w+)\)/.exec((e as Error).message);
    return { status: Number(m?.[1] ?? 0), error: m?.[2] ?? (e as Error).message };
  } finally {
    client.close();
  }
}

/** A request c signs with the key it derives with `to` (from the two databases' key pairs), as c's peer-sync does. */
async function cPost(to: string, path: string, data: unknown): Promise<number> {
  const [id] = await sql<{ private_key: string; public_key: string }>("c", "SELECT private_key, public_key FROM peer_identity");
  const [peer] = await sql<{ public_key: string }>(to, "SELECT public_key FROM peer_identity");
  const key = pairKey({ name: "c", keys: { privateKey: id!.private_key, publicKey: id!.public_key } }, { name: to, publicKey: peer!.public_key });
  const body = JSON.stringify(data);
  const headers = signedHeaders(key, { method: "POST", path, from: "c", to, timestamp: Date.now(), nonce: newNonce(), body });
  const r = await fetch(`${fx.lc.get(to).syncUrl}${path}`, { method: "POST", headers, body });
  return r.status;
}

/** A hello from c: accepted (200) while c is a member there, 403 after. */
const cHelloTo = (to: string) => cPost(to, PATHS.hello, { v: 1, kind: "hello", server: { name: "c", address: fx.addr("c"), syncUrl: fx.lc.get("c").syncUrl, quota: 0, online: 0 } });

const summary = async (at: string) => (await serversAt(fx.addr(at))).map((r) => `${r.name} ${r.state}`).sort();

let token = "";
/** The invite b issued for c's rejoin (set by that test). */
let rejoinToken = "";

/**
 * A TCP proxy to `port` that cuts the first connection as soon as the answer to its request
 * starts coming back: the issuer has accepted (and committed) the join, and the newcomer never
 * hears of it. Later connections pass.
 */
async function dropFirstAnswer(port: number): Promise<{ url: string; dropped: () => number; close: () => Promise<void> }> {
  const [own] = await freePorts(1);
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = connect(port, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    }
    down.pipe(up);
    if (dropped === 0) {
      up.once("data", () => {
        dropped++;
        down.destroy();
        up.destroy();
      });
    } else up.pipe(down);
  });
  await new Promise<void>((r) => server.listen(own!, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${own}`,
    dropped: () => dropped,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const logOf = (n: string) => readFileSync(join(fx.lc.logDir, `peer-sync-${n}.log`), "utf8");
/** a's "cluster joined by invite" log lines: one per accepted join (its member.join written with it), none for a join answered again. */
const joinedLines = () => logOf("a").split("\n").filter((l) => l.includes('"cluster joined by invite"')).length;
const metricsOf = async (n: string) => (await fetch(`http://127.0.0.1:${fx.lc.get(n).peerSync.httpPort}/metrics`)).text();

test("a and b are linked by PEERS and know each other's public key (what a join hands on)", async () => {
  for (const [at, other] of [["a", "b"], ["b", "a"]] as const) {
    await eventually(async () => {
      const [mine] = await sql<{ public_key: string }>(other, "SELECT public_key FROM peer_identity");
      expect(await sql(at, "SELECT public_key FROM server_list WHERE name = $1", [other])).toEqual([{ public_key: mine!.public_key }]);
    }, 10_000);
  }
  // The private key stays in its own database: never in what a peer was told.
  const [a] = await sql<{ private_key: string }>("a", "SELECT private_key FROM peer_identity");
  expect(await sql("b", "SELECT 1 FROM server_list WHERE public_key = $1", [a!.private_key])).toEqual([]);
});

test("a forged invite (wrong secret) is refused and changes nothing; the rightful holder can still use it", async () => {
  token = await invite("a", "c");
  const inv = inviteOf(token);
  const forged = encodeInvite({ ...inv, secret: Buffer.alloc(32, 7).toString("base64url") });
  expect(await refusedStart({ JOIN: forged })).toMatch(/refused the join: HTTP 401 \(bad_signature\)/);
  await nothingApplied(inv.id);
  // A made-up invite id: unknown.
  expect(await postJoin({ ...inv, id: "x".repeat(22) }, "c")).toEqual({ status: 403, error: "unknown_invite" });
  await nothingApplied(inv.id);
}, 30_000);

test("an invite used under another SERVER_NAME is refused, by the newcomer's config and by the issuer", async () => {
  const inv = inviteOf(token);
  // The newcomer's own check: fails fast, naming the setting.
  expect(await refusedStart({ JOIN: token, SERVER_NAME: "d" })).toMatch(/JOIN: this invite is for a cluster named c, and SERVER_NAME is d/);
  // A newcomer that skipped that check: the issuer refuses it all the same.
  expect(await postJoin(inv, "d")).toEqual({ status: 403, error: "invite_name" });
  await nothingApplied(inv.id);
  expect(await sql("a", "SELECT name FROM peer_members WHERE name = 'd'")).toEqual([]);
}, 30_000);

test("an expired invite is refused and changes nothing", async () => {
  const expired = await invite("a", "c", "1s");
  const inv = inviteOf(expired);
  await eventually(async () => expect(Date.now()).toBeGreaterThan(new Date(inv.expiresAt).getTime() + 100), 5000);
  expect(await refusedStart({ JOIN: expired })).toMatch(/refused the join: HTTP 403 \(invite_expired\)/);
  await nothingApplied(inviteOf(token).id);
}, 30_000);

test("c joins with only an invite (a's first answer lost on the way: c asks again and is answered again): within 5 s SERVERS on a, b and c lists all three; a user of a logs in on c; messages route a->c and c->b", async () => {
  // The token names the proxy as a's sync URL (the MAC key binds id, name and secret, not the URL).
  const proxy = await dropFirstAnswer(Number(new URL(fx.lc.get("a").syncUrl).port));
  const p = cProcess({ JOIN: encodeInvite({ ...inviteOf(token), syncUrl: proxy.url }) });
  p.start();
  try {
    await p.waitReady(20_000);
  } finally {
    await proxy.close();
  }
  expect(proxy.dropped()).toBe(1);
  expect(logOf("a")).toContain("join asked again by the cluster it admitted");
  // Accepted once (one member.join written, the invite marked used once), answered twice.
  expect(joinedLines()).toBe(1);
  // Timed from the join itself (a marked the invite used), not from the process start: a node
  // process booting on a loaded 2-core machine is not what the 5 s are about.
  const [{ used_at: usedAt }] = (await sql<{ used_at: Date }>("a", "SELECT used_at FROM peer_invites WHERE id = $1", [inviteOf(token).id])) as [{ used_at: Date }];
  const deadline = new Date(usedAt).getTime() + 5000;
  for (const at of NAMES) await eventually(async () => expect(await summary(at)).toEqual(["a UP", "b UP", "c UP"]), Math.max(0, deadline - Date.now()), 100);
  // Who knows whom, and how: c is a member on a (joined there) and b (told by a); a and b are c's.
  expect(await sql("a", "SELECT name, introduced_by FROM peer_members")).toEqual([{ name: "c", introduced_by: "a" }]);
  expect(await sql("b", "SELECT name, introduced_by FROM peer_members")).toEqual([{ name: "c", introduced_by: "a" }]);
  expect(await sql("c", "SELECT name FROM peer_members ORDER BY name")).toEqual([{ name: "a" }, { name: "b" }]);
  expect((await sql<{ used_at: Date | null }>("a", "SELECT used_at FROM peer_invites WHERE id = $1", [inviteOf(token).id]))[0]!.used_at).not.toBeNull();

  // alice registered on a before c existed: c gets her account (a's bootstrap of its new peer).
  const { c: alice0 } = await loginClient(fx.addr("a"), "alice", "secret1", { register: true });
  fx.track(alice0);
  await eventually(async () => expect(await sql("c", "SELECT home_cluster FROM users WHERE name = 'alice'")).toEqual([{ home_cluster: "a" }]), 5000);
  const { c: alice } = await loginClient(fx.addr("c"), "alice", "secret1");
  fx.track(alice);
  const { c: amy } = await loginClient(fx.addr("a"), "amy", "secret1", { register: true });
  fx.track(amy);
  const { c: bob } = await loginClient(fx.addr("b"), "bob", "secret1", { register: true });
  fx.track(bob);
  for (const [user, at] of [["alice", "c"], ["amy", "a"], ["bob", "b"]]) {
    for (const n of NAMES) await eventually(async () => expect(await sql(n, "SELECT cluster FROM sessions WHERE user_name = $1", [user])).toEqual([{ cluster: at }]), 5000);
  }
  // a -> c
  const toC = await amy.request("SEND alice hello c");
  expect(toC).toMatch(new RegExp(`^OK SENT ${ID} DELIVERED$`));
  await alice.waitFor((l) => l.startsWith(`MSG ${sentId(toC)} amy `) && l.endsWith(" hello c"), 5000);
  // c -> b
  const toB = await alice.request("SEND bob hello b");
  expect(toB).toMatch(new RegExp(`^OK SENT ${ID} DELIVERED$`));
  await bob.waitFor((l) => l.startsWith(`MSG ${sentId(toB)} alice `) && l.endsWith(" hello b"), 5000);
}, 60_000);

test("a reused invite is refused and changes nothing; the cluster it admitted asking again (same key) is answered again, also changing nothing", async () => {
  const before = await sql("a", "SELECT name, public_key, joined_at, invite_id FROM peer_members");
  expect(before).toEqual([expect.objectContaining({ name: "c", invite_id: inviteOf(token).id })]);
  expect(await postJoin(inviteOf(token), "c")).toEqual({ status: 403, error: "invite_used" });
  expect(await sql("a", "SELECT name, public_key, joined_at, invite_id FROM peer_members")).toEqual(before);
  // c's own key (what c's retry after a lost answer sends, with a fresh nonce): the same answer.
  const [{ public_key: cKey }] = (await sql<{ public_key: string }>("c", "SELECT public_key FROM peer_identity")) as [{ public_key: string }];
  const server = { name: "c", syncUrl: fx.lc.get("c").syncUrl, address: fx.addr("c"), publicKey: cKey };
  const answers: unknown[] = [];
  for (let i = 0; i < 2; i++) answers.push(await postJoin(inviteOf(token), "c", server));
  expect(answers[0]).toEqual({ status: 200, error: "", members: ["a", "b"] });
  expect(answers[1]).toEqual(answers[0]);
  expect(await sql("a", "SELECT name, public_key, joined_at, invite_id FROM peer_members")).toEqual(before);
  expect(joinedLines()).toBe(1);
});

test("after restarts of c (without its token) and a, the links come back from the database", async () => {
  const c = fx.lc.get("c");
  await c.peerSync.stop();
  const p = cProcess({});
  expect(p.env.JOIN).toBeUndefined();
  await p.restart();
  await fx.lc.get("a").peerSync.stop();
  await fx.lc.get("a").peerSync.restart();
  const healthOf = async (n: string) => ((await (await fetch(`http://127.0.0.1:${fx.lc.get(n).peerSync.httpPort}/healthz`)).json()) as { links: Record<string, { state: string }> }).links;
  await eventually(async () => expect(await healthOf("c")).toMatchObject({ a: { state: "UP" }, b: { state: "UP" } }), 10_000);
  await eventually(async () => expect(await healthOf("a")).toMatchObject({ b: { state: "UP" }, c: { state: "UP" } }), 10_000);
  for (const at of NAMES) await eventually(async () => expect(await summary(at)).toEqual(["a UP", "b UP", "c UP"]), 10_000);
}, 60_000);

test("a member cannot revoke a PEERS peer: c's member.revoke about a is ignored by b, and a stays linked", async () => {
  const frames = { v: 1, kind: "frames", epoch: "lying-c", frames: [{ txid: "1", id: "1", kind: "member.revoke", data: { name: "a" } }] };
  expect(await cPost("b", PATHS.frames, frames)).toBe(200);
  const metrics = await (await fetch(`http://127.0.0.1:${fx.lc.get("b").peerSync.httpPort}/metrics`)).text();
  expect(metrics).toMatch(/^pesan_peer_frames_refused_total\{kind="member\.revoke",reason="not_member"[^}]*\} 1$/m);
  expect(await summary("b")).toEqual(["a UP", "b UP", "c UP"]);
  expect(await sql("b", "SELECT name FROM server_list WHERE name = 'a' AND access_key IS NOT NULL")).toEqual([{ name: "a" }]);
});

test("revoke c on b: within 5 s neither a nor b accepts c's requests, and neither lists it", async () => {
  expect(await cHelloTo("a")).toBe(200);
  expect(await cHelloTo("b")).toBe(200);
  const r = await cli(fx.lc.get("b"), ["revoke", "c"]);
  expect(r).toMatchObject({ code: 0, stdout: "revoked c\n" });
  const at = Date.now();
  for (const n of ["a", "b"]) await eventually(async () => expect(await cHelloTo(n)).toBe(403), 5000, 100);
  expect(Date.now() - at).toBeLessThan(5000);
  for (const n of ["a", "b"]) {
    await eventually(async () => expect(await summary(n)).toEqual(["a UP", "b UP"]), 5000);
    expect((await sql<{ revoked_at: Date | null }>(n, "SELECT revoked_at FROM peer_members WHERE name = 'c'"))[0]!.revoked_at).not.toBeNull();
  }
  // A second revoke: nothing to do, said so.
  expect(await cli(fx.lc.get("b"), ["revoke", "c"])).toMatchObject({ code: 2, stderr: expect.stringMatching(/not a member here/) });
}, 30_000);

/** A batch of frames to a, signed by b with the a-b key, as b's peer-sync sends them (its epoch our own: nothing skipped). */
let bTxid = 1;
async function fromBToA(frames: Array<{ kind: string; data: unknown }>): Promise<void> {
  const client = new PeerClient({ self: "b", peer: "a", baseUrl: fx.lc.get("a").syncUrl, key: fx.lc.keyOf("a", "b"), timeoutMs: 10_000 });
  try {
    const t = String(bTxid++);
    await client.post(PATHS.frames, { v: 1, kind: "frames", epoch: "test-b-replay", frames: frames.map((f, i) => ({ txid: t, id: String(i + 1), ...f })) });
  } finally {
    client.close();
  }
}

const refusedFrames = async (at: string, kind: string, reason: string) =>
  Number(new RegExp(`^pesan_peer_frames_refused_total\\{kind="${kind.replace(".", "\\.")}",reason="${reason}"[^}]*\\} (\\d+)$`, "m").exec(await metricsOf(at))?.[1] ?? NaN);

test("c, revoked, sees every member refuse it: /healthz says 'refused: not a member' and the log says so once per link", async () => {
  const health = async () => ((await (await fetch(`http://127.0.0.1:${fx.lc.get("c").peerSync.httpPort}/healthz`)).json()) as { links: Record<string, { state: string; error?: string }> }).links;
  await eventually(async () => expect(await health()).toMatchObject({ a: { state: "DOWN", error: "refused: not a member (403 unknown_sender)" }, b: { state: "DOWN", error: "refused: not a member (403 unknown_sender)" } }), 10_000);
  const warned = logOf("c").split("\n").filter((l) => l.includes("refuses this cluster as not a member"));
  expect(warned.map((l) => (JSON.parse(l) as { peer: string }).peer).sort()).toEqual(["a", "b"]);
}, 30_000);

test("an older member.join of c (its revoked invite) delivered to a after the revoke does not bring c back", async () => {
  const old = inviteOf(token).id;
  // a applied b's member.revoke: it remembers the revoked membership.
  expect(await sql("a", "SELECT name, invite_id FROM peer_revoked_invites")).toEqual([{ name: "c", invite_id: old }]);
  const [{ public_key: cKey }] = (await sql<{ public_key: string }>("c", "SELECT public_key FROM peer_identity")) as [{ public_key: string }];
  const before = await refusedFrames("a", "member.join", "revoked");
  await fromBToA([{ kind: "member.join", data: { name: "c", syncUrl: fx.lc.get("c").syncUrl, address: fx.addr("c"), publicKey: cKey, invite: old, revoked: [] } }]);
  expect(await refusedFrames("a", "member.join", "revoked")).toBe(before + 1);
  expect((await sql<{ revoked_at: Date | null }>("a", "SELECT revoked_at FROM peer_members WHERE name = 'c'"))[0]!.revoked_at).not.toBeNull();
  expect(await sql("a", "SELECT name FROM server_list WHERE name = 'c'")).toEqual([]);
  // Give a's member reload its chance (LISTEN wakes it within a second): still no link.
  await new Promise((r) => setTimeout(r, 1500));
  expect(await cHelloTo("a")).toBe(403);
  expect(await summary("a")).toEqual(["a UP", "b UP"]);
}, 30_000);

test("a new invite (from b) brings c back everywhere; the old invite's join and revoke, delivered late, change nothing", async () => {
  const fresh = await invite("b", "c");
  rejoinToken = fresh;
  await fx.lc.get("c").peerSync.stop();
  const p = cProcess({ JOIN: fresh });
  p.start();
  await p.waitReady(20_000);
  for (const at of NAMES) await eventually(async () => expect(await summary(at)).toEqual(["a UP", "b UP", "c UP"]), 10_000, 100);
  for (const n of ["a", "b"]) await eventually(async () => expect(await cHelloTo(n)).toBe(200), 5000, 100);
  const now = inviteOf(fresh).id;
  expect(await sql("a", "SELECT invite_id, introduced_by FROM peer_members WHERE name = 'c' AND revoked_at IS NULL")).toEqual([{ invite_id: now, introduced_by: "b" }]);
  expect(await sql("c", "SELECT joined_with_invite FROM peer_identity")).toEqual([{ joined_with_invite: now }]);

  // The first invite's join and revoke, again and late (another issuer's outbox): c stays.
  const old = inviteOf(token).id;
  const [{ public_key: cKey }] = (await sql<{ public_key: string }>("c", "SELECT public_key FROM peer_identity")) as [{ public_key: string }];
  await fromBToA([
    { kind: "member.join", data: { name: "c", syncUrl: fx.lc.get("c").syncUrl, address: fx.addr("c"), publicKey: cKey, invite: old, revoked: [] } },
    { kind: "member.revoke", data: { name: "c", invite: old } },
  ]);
  expect(await sql("a", "SELECT invite_id FROM peer_members WHERE name = 'c' AND revoked_at IS NULL")).toEqual([{ invite_id: now }]);
  await new Promise((r) => setTimeout(r, 1500));
  expect(await cHelloTo("a")).toBe(200);
  expect(await summary("a")).toEqual(["a UP", "b UP", "c UP"]);
}, 60_000);

test("a join request sent again as captured (same nonce, headers and body) is answered once: the copy gets 401 replay, counted, and changes nothing", async () => {
  const inv = inviteOf(rejoinToken);
  const [{ public_key: cKey }] = (await sql<{ public_key: string }>("c", "SELECT public_key FROM peer_identity")) as [{ public_key: string }];
  const body = JSON.stringify({ v: 1, kind: "join", server: { name: "c", syncUrl: fx.lc.get("c").syncUrl, address: fx.addr("c"), publicKey: cKey } });
  const headers = joinSigner(inv.id).headers(inviteMacKey(inv), { method: "POST", path: JOIN_PATH, from: "c", to: inv.issuer, timestamp: Date.now(), nonce: newNonce(), body });
  const send = () => fetch(`${inv.syncUrl}${JOIN_PATH}`, { method: "POST", headers, body }).then(async (r) => ({ status: r.status, error: ((await r.json()) as { error?: string }).error }));
  const replays = async () => Number(/^pesan_peer_refused_requests_total\{reason="replay"[^}]*\} (\d+)$/m.exec(await metricsOf("b"))?.[1] ?? 0);
  const members = () => sql("b", "SELECT name, public_key, joined_at, invite_id, revoked_at FROM peer_members ORDER BY name");
  const [before, replaysBefore] = [await members(), await replays()];
  // The first is c asking again under the invite it joined with (its answer lost): answered.
  expect(await send()).toEqual({ status: 200, error: undefined });
  expect(await send()).toEqual({ status: 401, error: "replay" });
  expect(await replays()).toBe(replaysBefore + 1);
  expect(await members()).toEqual(before);
});

test("/v1/join is rate limited per address before any work: a burst of requests gets 429 rate_limited, counted", async () => {
  const before = Number(/^pesan_peer_refused_requests_total\{reason="rate_limited"[^}]*\} (\d+)$/m.exec(await metricsOf("a"))?.[1] ?? NaN);
  const statuses = await Promise.all(Array.from({ length: 40 }, () => fetch(`${fx.lc.get("a").syncUrl}/v1/join`, { method: "POST", body: "{}" }).then(async (r) => ({ status: r.status, error: ((await r.json()) as { error: string }).error }))));
  const limited = statuses.filter((s) => s.status === 429);
  // The address's burst (10) gets through to the checks (unsigned: 401); the rest is refused unread.
  expect(statuses.filter((s) => s.status === 401).length).toBeLessThanOrEqual(12);
  expect(limited.length).toBeGreaterThanOrEqual(28);
  expect(new Set(limited.map((s) => s.error))).toEqual(new Set(["rate_limited"]));
  expect(Number(/^pesan_peer_refused_requests_total\{reason="rate_limited"[^}]*\} (\d+)$/m.exec(await metricsOf("a"))?.[1])).toBe(before + limited.length);
});
