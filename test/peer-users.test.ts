/**
 * Update User and Update Connected across three clusters on one machine (a, b, c), each a
 * gateway, a router and a peer-sync process with its own database: accounts and presence are
 * global, a registration race ends with one owner, a cluster that was away catches up, and a
 * session moves between clusters by LOGIN (the old client gets `BYE replaced`) or by RESUME.
 */
import { RawClient } from "./support/udp.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";
import { loginClient } from "./support/e2e.ts";

const NAMES = ["a", "b", "c"];
const fx = useLinkedClusters({ names: NAMES, intervalMs: 200, env: { OUTBOX_POLL_MS: "50", SNAPSHOT_INTERVAL_MS: "2000" } });
const { addr, sql } = fx;

async function client(at: string): Promise<RawClient> {
  const c = await RawClient.open(addr(at));
  fx.track(c);
  return c;
}

async function login(at: string, user: string, password: string, register = false) {
  const r = await loginClient(addr(at), user, password, { register });
  fx.track(r.c);
  return r;
}

/** A logged-in watcher per cluster (WHO needs a session); they show in every list too. */
const watchers = new Map<string, RawClient>();

async function who(at: string): Promise<string[]> {
  let c = watchers.get(at);
  if (!c) {
    c = (await login(at, `w_${at}`, "watcher1", true)).c;
    watchers.set(at, c);
  }
  const lines = await c.requestAll("WHO", 3000);
  expect(lines.at(-1)).toMatch(/^OK WHO \d+$/);
  return lines
    .filter((l) => l.startsWith("ONLINE"))
    .flatMap((l) => l.split(" ").slice(1))
    .filter(Boolean)
    .sort();
}

async function userRows(user: string): Promise<Array<{ at: string; home: string; created: string } | undefined>> {
  return Promise.all(
    NAMES.map(async (n) => {
      const r = await sql<{ home_cluster: string; created_at: Date }>(n, "SELECT home_cluster, created_at FROM users WHERE name = $1", [user]);
      return r[0] ? { at: n, home: r[0].home_cluster, created: r[0].created_at.toISOString() } : undefined;
    }),
  );
}

test("a user registered on A can log in on B and C with the same password", async () => {
  const c = await client("a");
  expect(await c.request("REGISTER ann secret1")).toBe("OK REGISTERED ann");
  for (const at of ["b", "c"]) {
    await eventually(async () => {
      const b = await client(at);
      expect(await b.request("LOGIN ann secret1")).toMatch(/^OK LOGIN ann \S+ \S+$/);
    }, 5000, 100);
  }
  const rows = await userRows("ann");
  for (const r of rows) expect(r).toEqual({ at: r!.at, home: "a", created: rows[0]!.created });
  // and a wrong password is still wrong everywhere
  expect(await (await client("c")).request("LOGIN ann wrong-password")).toMatch(/^ERR AUTH /);
});

test("UNREGISTER on B removes the account in every cluster", async () => {
  const c = await client("a");
  expect(await c.request("REGISTER ben secret2")).toBe("OK REGISTERED ben");
  await eventually(async () => expect((await userRows("ben")).every((r) => r !== undefined)).toBe(true), 5000);
  const { c: b } = await login("b", "ben", "secret2");
  expect(await b.request("UNREGISTER secret2")).toBe("OK UNREGISTERED");
  await eventually(async () => expect(await userRows("ben")).toEqual([undefined, undefined, undefined]), 5000);
  for (const at of NAMES) expect(await (await client(at)).request("LOGIN ben secret2")).toMatch(/^ERR AUTH /);
  // The name is free again, everywhere.
  expect(await (await client("c")).request("REGISTER ben secret3")).toBe("OK REGISTERED ben");
  await eventually(async () => expect((await userRows("ben")).map((r) => r?.home)).toEqual(["c", "c", "c"]), 5000);
});

test("WHO on every cluster lists the users online on every cluster; LOGOUT and expiry remove them everywhere", async () => {
  const alice = await login("a", "alice", "secret1", true);
  const bob = await login("b", "bob", "secret1", true);
  await login("c", "carol", "secret1", true);
  for (const at of NAMES) {
    await eventually(async () => expect(await who(at)).toEqual(expect.arrayContaining(["alice", "bob", "carol"])), 5000, 100);
  }
  // The ONLINE list at login is global too.
  const { c: dan } = await login("b", "dan", "secret1", true);
  const online = dan.lines.find((l) => l.startsWith("ONLINE "))!.split(" ");
  expect(online).toEqual(expect.arrayContaining(["alice", "bob", "carol"]));
  // Counts in SERVERS / QUOTA are each cluster's own sessions only. SERVERS is asked in a
  // session: without one an address gets at most 3x its bytes (the amplification bound).
  const { c: probe } = await login("a", "srv_probe", "secret1", true);
  const n = (await sql<{ n: number }>("a", "SELECT count(*)::int AS n FROM sessions WHERE cluster = 'a'"))[0]!.n;
  const all = (await sql<{ all: number }>("a", "SELECT count(*)::int AS all FROM sessions"))[0]!.all;
  expect(all).toBeGreaterThan(n);
  const servers = await probe.requestAll("SERVERS");
  expect(servers[0]).toMatch(new RegExp(`^SERVER a \\S+ UP ${n}/`));

  expect(await bob.c.request("LOGOUT")).toBe("OK BYE");
  for (const at of NAMES) await eventually(async () => expect(await who(at)).not.toContain("bob"), 5000, 100);

  // carol stops talking: her lease ends on C (made so by hand), and everyone forgets her.
  await sql("c", "UPDATE sessions SET last_heard = now() - interval '1 day' WHERE user_name = 'carol'");
  for (const at of NAMES) await eventually(async () => expect(await who(at)).not.toContain("carol"), 10_000, 200);
  expect(await who("b")).toContain("alice");
  void alice;
}, 60_000);

test("simultaneous REGISTER of one name on A and B ends with one owner everywhere; the loser gets ERR TAKEN at LOGIN", async () => {
  const ca = await client("a");
  const cb = await client("b");
  const [ra, rb] = await Promise.all([ca.request("REGISTER racer pass-from-a"), cb.request("REGISTER racer pass-from-b")]);
  expect([ra, rb].some((r) => r === "OK REGISTERED racer")).toBe(true);
  const rows = await eventually(async () => {
    const rows = await userRows("racer");
    expect(rows.every((r) => r !== undefined)).toBe(true);
    expect(new Set(rows.map((r) => `${r!.home} ${r!.created}`)).size).toBe(1);
    return rows;
  }, 8000, 100);
  const owner = rows[0]!.home;
  const loser = owner === "a" ? "b" : "a";
  // Stays settled (no flapping once every frame is in).
  await new Promise((r) => setTimeout(r, 1000));
  expect(new Set((await userRows("racer")).map((r) => `${r!.home} ${r!.created}`))).toEqual(new Set([`${owner} ${rows[0]!.created}`]));
  for (const at of NAMES) expect(await (await client(at)).request(`LOGIN racer pass-from-${owner}`)).toMatch(/^OK LOGIN racer \S+ \S+$/);
  const loserReply = loser === "a" ? ra : rb;
  if (loserReply === "OK REGISTERED racer") {
    // Its registration was undone: told so on its next LOGIN, on its own cluster and the others.
    for (const at of [loser, owner]) expect(await (await client(at)).request(`LOGIN racer pass-from-${loser}`)).toMatch(/^ERR TAKEN .*another server/);
  } else expect(loserReply).toMatch(/^ERR TAKEN /);
}, 30_000);

test("LOGIN on B of a user logged in on A sends BYE replaced to the A client", async () => {
  const { c: onA } = await login("a", "erin", "secret1", true);
  await eventually(async () => expect(await sql("b", "SELECT 1 FROM sessions WHERE user_name = 'erin' AND cluster = 'a'")).toHaveLength(1), 5000);
  await login("b", "erin", "secret1");
  await onA.waitFor(/^BYE replaced$/, 5000);
  for (const at of NAMES) {
    await eventually(async () => expect(await sql(at, "SELECT cluster FROM sessions WHERE user_name = 'erin'")).toEqual([{ cluster: "b" }]), 5000);
  }
  expect(await who("a")).toContain("erin");
});

test("RESUME on B of a session made on A works (failover), and A then lists the user as online on B", async () => {
  const { c: onA, token } = await login("a", "fred", "secret1", true);
  await eventually(async () => expect(await sql("b", "SELECT token FROM sessions WHERE user_name = 'fred' AND cluster = 'a'")).toEqual([{ token }]), 5000);
  const onB = await client("b");
  expect(await onB.request(`RESUME fred ${token}`)).toMatch(new RegExp(`^OK LOGIN fred ${token} \\S+$`));
  expect(await onB.request("PING")).toBe("OK PONG");
  for (const at of NAMES) {
    await eventually(async () => expect(await sql(at, "SELECT cluster, token FROM sessions WHERE user_name = 'fred'")).toEqual([{ cluster: "b", token }]), 5000);
  }
  expect(await who("a")).toContain("fred");
  // The same session moved: no BYE for the old address.
  expect((await onA.settle(300)).filter((l) => l.startsWith("BYE"))).toEqual([]);
});

test("a cluster whose peer-sync was down (kill -9) catches up when it is back", async () => {
  const c = fx.lc.get("c");
  await c.peerSync.kill9();
  expect(await (await client("a")).request("REGISTER gina secret1")).toBe("OK REGISTERED gina");
  await eventually(async () => expect(await sql("b", "SELECT 1 FROM users WHERE name = 'gina'")).toHaveLength(1), 5000);
  expect(await sql("c", "SELECT 1 FROM users WHERE name = 'gina'")).toHaveLength(0);
  await c.peerSync.restart();
  await eventually(async () => expect(await sql("c", "SELECT home_cluster FROM users WHERE name = 'gina'")).toEqual([{ home_cluster: "a" }]), 15_000, 200);
  const { c: onC } = await login("c", "gina", "secret1");
  expect(await onC.request("PING")).toBe("OK PONG");
}, 40_000);

test("the outbox does not grow: rows every peer acknowledged are pruned", async () => {
  const max = (await sql<{ max: string }>("a", "SELECT max(id)::text AS max FROM peer_outbox"))[0]!.max;
  expect(Number(max)).toBeGreaterThan(0);
  // housekeeping runs every 10 s; the snapshots (every 2 s here) keep every cursor moving.
  await eventually(async () => expect(await sql("a", "SELECT 1 FROM peer_outbox WHERE id <= $1", [max])).toHaveLength(0), 25_000, 500);
}, 40_000);
