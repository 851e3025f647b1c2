/**
 * Step 4 of peer-sync: cluster death and network cuts, with real processes. Three clusters
 * a, b, c; users chat across them through the client library (PesanClient, CAP ACK, 300 ms
 * heartbeats). kill -9 of every process of B while messages flow: B's clients fail over to A
 * with RESUME, nothing confirmed is lost or duplicated, and B converges after its restart.
 * Then a cut link (one peer-sync SIGSTOPped) heals without loss.
 */
import { PesanClient } from "@pesan/client";
import { RawClient } from "./support/udp.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";

const NAMES = ["a", "b", "c"];
const fx = useLinkedClusters({ names: NAMES, intervalMs: 200, env: { OUTBOX_POLL_MS: "50", SNAPSHOT_INTERVAL_MS: "2000" } }, 150_000);
const { addr, sql } = fx;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface User {
  name: string;
  client: PesanClient;
  /** body -> distinct ids it arrived with */
  got: Map<string, Set<string>>;
  failovers: string[];
}

async function user(name: string, home: string, servers: string[]): Promise<User> {
  const r = await RawClient.open(addr(home));
  fx.track(r);
  expect(await r.request(`REGISTER ${name} secret1`)).toBe(`OK REGISTERED ${name}`);
  for (const at of NAMES) await eventually(async () => expect(await sql(at, "SELECT 1 FROM users WHERE name = $1", [name])).toHaveLength(1), 5000);
  const client = new PesanClient({ servers, heartbeatMs: 300, capAck: true, requestTimeoutMs: 1000 });
  fx.track(client);
  client.on("error", () => undefined);
  const u: User = { name, client, got: new Map(), failovers: [] };
  client.on("message", (m) => {
    const ids = u.got.get(m.text) ?? new Set<string>();
    ids.add(m.id);
    u.got.set(m.text, ids);
  });
  // Every MSG line, also the ones the library drops as already seen: a second id for one body is a duplicate.
  client.on("push", (m) => {
    if (m.kind !== "MSG") return;
    const ids = u.got.get(m.text) ?? new Set<string>();
    ids.add(m.id);
    u.got.set(m.text, ids);
  });
  client.on("failover", (e) => u.failovers.push(e.to));
  await client.start();
  await client.login(name, "secret1");
  return u;
}

/** Waits until every cluster lists the user's session as held by `cluster`. */
async function heldBy(user: string, cluster: string, timeoutMs = 8000, where = NAMES): Promise<void> {
  for (const at of where) {
    await eventually(async () => expect((await sql<{ cluster: string }>(at, "SELECT cluster FROM sessions WHERE user_name = $1", [user])).map((r) => r.cluster)).toEqual([cluster]), timeoutMs);
  }
}

interface Flow {
  /** recipient -> bodies whose SEND was answered OK */
  confirmed: Map<string, string[]>;
  /** recipient -> bodies whose SEND got no answer (may or may not have been taken) */
  unsure: Map<string, string[]>;
  stop(): Promise<void>;
}

/** Each sender sends to its recipients in turn, one SEND at a time, until stopped. */
function flow(pairs: Array<[User, User[]]>, tag: string, gapMs = 40): Flow {
  const confirmed = new Map<string, string[]>();
  const unsure = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, k: string, v: string) => m.set(k, [...(m.get(k) ?? []), v]);
  let stopped = false;
  const loops = pairs.map(async ([from, tos]) => {
    for (let i = 0; !stopped && i < 10_000; i++) {
      const to = tos[i % tos.length]!;
      const body = `${tag}-${from.name}-${to.name}-${i}`;
      try {
        await from.client.send(to.name, body);
        add(confirmed, to.name, body);
      } catch {
        add(unsure, to.name, body);
      }
      await sleep(gapMs);
    }
  });
  return {
    confirmed,
    unsure,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Every confirmed body arrived, each with exactly one id; an unconfirmed one at most once. */
async function expectExactlyOnce(users: User[], f: Flow, timeoutMs: number): Promise<{ confirmed: number; unsure: number }> {
  let confirmed = 0;
  let unsure = 0;
  for (const u of users) {
    const want = f.confirmed.get(u.name) ?? [];
    confirmed += want.length;
    unsure += (f.unsure.get(u.name) ?? []).length;
    await eventually(async () => expect(want.filter((b) => !u.got.has(b))).toEqual([]), timeoutMs, 200);
    for (const b of want) expect([b, u.got.get(b)!.size]).toEqual([b, 1]);
    for (const b of f.unsure.get(u.name) ?? []) expect(u.got.get(b)?.size ?? 0).toBeLessThanOrEqual(1);
  }
  return { confirmed, unsure };
}

const serversOf = async (at: string) => {
  const c = await RawClient.open(addr(at));
  fx.track(c);
  // In a session: an address without one gets at most 3x its bytes (the amplification bound).
  const name = `srv_${Math.random().toString(36).slice(2, 10)}`;
  await c.request(`REGISTER ${name} secret1`);
  await c.request(`LOGIN ${name} secret1`);
  c.lines.length = 0;
  await c.request("SERVERS");
  return c.lines.filter((l) => l.startsWith("SERVER ")).map((l) => l.split(" ").slice(1, 4).join(" ")).sort();
};
const whoOf = async (at: string) => (await sql<{ user_name: string; cluster: string }>(at, "SELECT user_name, cluster FROM sessions ORDER BY user_name")).map((r) => `${r.user_name}@${r.cluster}`);

const undelivered = async (at: string) =>
  (await sql<Record<string, unknown>>(at, "SELECT id, recipient, push_attempts, next_push_at IS NOT NULL AS due, replicated, body FROM messages WHERE NOT delivered")).map((r) => ({ at, ...r }));

let a1: User, c1: User, b1: User, b2: User;

test("kill -9 of every process of B while messages flow: B's clients RESUME on A, nothing lost or duplicated, B converges after restart", async () => {
  a1 = await user("fa1", "a", [addr("a")]);
  c1 = await user("fc1", "c", [addr("c")]);
  b1 = await user("fb1", "b", [addr("b"), addr("a"), addr("c")]);
  b2 = await user("fb2", "b", [addr("b"), addr("a"), addr("c")]);
  for (const [u, at] of [[a1, "a"], [c1, "c"], [b1, "b"], [b2, "b"]] as const) await heldBy(u.name, at);

  const f = flow([
    [a1, [b1, b2, c1]],
    [c1, [b1, b2, a1]],
    [b1, [a1, c1, b2]],
    [b2, [b1, a1]],
  ], "k");
  await sleep(1500);
  const b = fx.lc.get("b");
  await Promise.all([b.peerSync.kill9(), ...b.cluster!.routers.map((p) => p.kill9()), ...b.cluster!.gateways.map((p) => p.kill9())]);
  // B's clients notice (3 missed heartbeats) and RESUME on A, the next server in their list.
  await eventually(async () => expect([b1.client.currentServer, b2.client.currentServer]).toEqual([addr("a"), addr("a")]), 6000);
  // B is dead (its database is not, but nobody writes to it): A and C know.
  await heldBy(b1.name, "a", 8000, ["a", "c"]);
  await heldBy(b2.name, "a", 8000, ["a", "c"]);
  await sleep(2500);
  await f.stop();
  // B comes back: its outbox (messages its users sent before the kill) flows, and it learns
  // where its users are now.
  await Promise.all([...b.cluster!.routers.map((p) => p.restart()), ...b.cluster!.gateways.map((p) => p.restart()), b.peerSync.restart()]);
  const totals = await expectExactlyOnce([a1, c1, b1, b2], f, 20_000);
  expect(totals.confirmed).toBeGreaterThan(100);
  expect(b1.failovers[0]).toBe(addr("a"));
  // B converges: same sessions and servers as the others, none of its own left for moved users.
  await eventually(async () => {
    const want = await whoOf("a");
    expect(want).toEqual(["fa1@a", "fb1@a", "fb2@a", "fc1@c"]);
    expect(await whoOf("b")).toEqual(want);
    expect(await whoOf("c")).toEqual(want);
  }, 45_000, 300);
  await eventually(async () => {
    const s = await serversOf("a");
    expect(s.every((l) => l.endsWith(" UP"))).toBe(true);
    expect(await serversOf("b")).toEqual(s);
    expect(await serversOf("c")).toEqual(s);
  }, 10_000, 300);
  // Nothing of theirs is left undelivered anywhere (every copy converged).
  await eventually(async () => {
    for (const at of NAMES) expect(await undelivered(at)).toEqual([]);
  }, 45_000, 300);
  console.log(`failover: ${totals.confirmed} confirmed, ${totals.unsure} unanswered sends; fb1 failovers ${b1.failovers.join(",")}`);
}, 150_000);

test("a SEND to a user whose session a DOWN cluster holds is STORED and delivered at RESUME elsewhere", async () => {
  // fb1 is on A now. Take C down (only its peer-sync and processes), move nothing: a SEND from
  // A to c1 while C is DOWN is stored and copied; c1 failing over is not possible (servers=[C]),
  // so it is delivered when C is back.
  const c = fx.lc.get("c");
  await Promise.all([c.peerSync.kill9(), ...c.cluster!.routers.map((p) => p.kill9()), ...c.cluster!.gateways.map((p) => p.kill9())]);
  await eventually(async () => expect((await sql<{ active: boolean }>("a", "SELECT active FROM server_list WHERE name = 'c'"))[0]!.active).toBe(false), 5000);
  // WHO on A no longer lists c1: nobody can reach it while C is DOWN.
  expect(await a1.client.who()).not.toContain(c1.name);
  const r = await a1.client.send(c1.name, "while-c-down");
  expect(r.raw).toMatch(/ STORED$/);
  await Promise.all([...c.cluster!.routers.map((p) => p.restart()), ...c.cluster!.gateways.map((p) => p.restart()), c.peerSync.restart()]);
  await eventually(async () => expect(await a1.client.who()).toContain(c1.name), 15_000, 200);
  await eventually(async () => expect(c1.got.get("while-c-down")?.size).toBe(1), 15_000, 200);
}, 60_000);

test("a cut link (B's peer-sync SIGSTOPped) heals without lost or duplicated messages", async () => {
  // Everyone home again: b users back on B.
  const b = fx.lc.get("b");
  for (const u of [b1, b2]) {
    await u.client.close();
  }
  b1 = await relogin("fb1", [addr("b"), addr("a")]);
  b2 = await relogin("fb2", [addr("b"), addr("a")]);
  // Both home everywhere before the flow starts: this test is about the cut. (A SEND racing a
  // session's move is handed over by the routers' sweep; test/peer-handover.test.ts.)
  await heldBy("fb1", "b");
  await heldBy("fb2", "b");
  const f = flow([
    [a1, [b1, b2]],
    [b1, [a1, c1]],
    [c1, [b2]],
  ], "cut");
  await sleep(800);
  const pid = b.peerSync.proc!.pid!;
  process.kill(pid, "SIGSTOP");
  try {
    await eventually(async () => expect((await sql<{ active: boolean }>("a", "SELECT active FROM server_list WHERE name = 'b'"))[0]!.active).toBe(false), 5000);
    await sleep(1500);
    // A's peer-sync reports the cut: link DOWN, frames for B piling up, and their age.
    const port = fx.lc.get("a").peerSync.httpPort;
    const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { links: Record<string, { state: string; outboxDepth: number; lagSeconds: number }> };
    expect(health.links.b!.state).toBe("DOWN");
    expect(health.links.b!.outboxDepth).toBeGreaterThan(0);
    expect(health.links.b!.lagSeconds).toBeGreaterThan(0.5);
    expect(health.links.c!.state).toBe("UP");
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/pesan_peer_replication_lag_seconds\{[^}]*peer="b"[^}]*\} (0\.[5-9]|[1-9])/);
    expect(metrics).toMatch(/pesan_peer_outbox_depth\{[^}]*peer="b"[^}]*\} [1-9]/);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  await sleep(1000);
  await f.stop();
  const totals = await expectExactlyOnce([a1, c1, b1, b2], f, 20_000);
  expect(totals.confirmed).toBeGreaterThan(50);
  // B's clients never moved: their gateway and router were fine, only the link was cut.
  expect(b1.failovers).toEqual([]);
  await eventually(async () => {
    for (const at of NAMES) expect(await undelivered(at)).toEqual([]);
  }, 45_000, 300);
  // Healed: nothing waits for B any more.
  await eventually(async () => {
    const h = (await (await fetch(`http://127.0.0.1:${fx.lc.get("a").peerSync.httpPort}/healthz`)).json()) as { links: Record<string, { state: string; outboxDepth: number }> };
    expect([h.links.b!.state, h.links.b!.outboxDepth]).toEqual(["UP", 0]);
  }, 10_000, 300);
}, 150_000);

async function relogin(name: string, servers: string[]): Promise<User> {
  const client = new PesanClient({ servers, heartbeatMs: 300, capAck: true, requestTimeoutMs: 1000 });
  fx.track(client);
  client.on("error", () => undefined);
  const u: User = { name, client, got: new Map(), failovers: [] };
  const note = (m: { kind: string; text?: string; id?: string }) => {
    if (m.kind !== "MSG" || m.text === undefined || m.id === undefined) return;
    const ids = u.got.get(m.text) ?? new Set<string>();
    ids.add(m.id);
    u.got.set(m.text, ids);
  };
  client.on("push", (m) => note(m as { kind: string; text?: string; id?: string }));
  client.on("failover", (e) => u.failovers.push(e.to));
  await client.start();
  await client.login(name, "secret1");
  return u;
}
