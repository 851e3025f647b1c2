/**
 * Update Messages and routing across three clusters on one machine (a, b, c), each a gateway,
 * a router and a peer-sync process with its own database: a SEND to a user online in another
 * cluster is routed there; a message for an offline user is delivered exactly once in whichever
 * cluster they log in; READ and DELETE reach every copy; ALL reaches every cluster; a CAP ACK
 * recipient elsewhere gets resends.
 */
import { RawClient } from "./support/udp.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";
import { ID, ISO_TIME, loginClient, sentId } from "./support/e2e.ts";

const NAMES = ["a", "b", "c"];
const fx = useLinkedClusters({ names: NAMES, intervalMs: 200, env: { OUTBOX_POLL_MS: "50", SNAPSHOT_INTERVAL_MS: "2000" } });
const { addr, sql } = fx;

async function login(at: string, user: string, o: { register?: boolean; capAck?: boolean } = {}) {
  const r = await loginClient(addr(at), user, "secret1", o);
  fx.track(r.c);
  return r;
}

/** Registers on `home` and waits until every cluster knows the account. */
async function register(home: string, user: string): Promise<void> {
  const c = await RawClient.open(addr(home));
  fx.track(c);
  expect(await c.request(`REGISTER ${user} secret1`)).toBe(`OK REGISTERED ${user}`);
  for (const at of NAMES) await eventually(async () => expect(await sql(at, "SELECT 1 FROM users WHERE name = $1", [user])).toHaveLength(1), 5000);
}

/** Waits until every cluster lists the user's session as held by `cluster` (or offline: null). */
async function sessionEverywhere(user: string, cluster: string | null): Promise<void> {
  for (const at of NAMES) {
    await eventually(async () => expect((await sql<{ cluster: string }>(at, "SELECT cluster FROM sessions WHERE user_name = $1", [user])).map((r) => r.cluster)).toEqual(cluster ? [cluster] : []), 5000);
  }
}

type Copy = { delivered: boolean; read: boolean } | undefined;
async function copies(id: string): Promise<Copy[]> {
  return Promise.all(NAMES.map(async (n) => (await sql<{ delivered: boolean; read: boolean }>(n, "SELECT delivered, read FROM messages WHERE id = $1", [id]))[0]));
}

const msgIds = (c: RawClient, id: string) => c.lines.filter((l) => l.startsWith(`MSG ${id} `));

test("SEND to a user online in another cluster is routed there: same id, DELIVERED, and the reply comes back", async () => {
  await register("a", "alice");
  const { c: alice } = await login("a", "alice");
  const { c: bob } = await login("b", "bob", { register: true });
  const { c: carol } = await login("c", "carol", { register: true });
  await sessionEverywhere("carol", "c");
  await sessionEverywhere("alice", "a");
  const reply = await alice.request("SEND carol hello from a");
  expect(reply).toMatch(new RegExp(`^OK SENT ${ID} DELIVERED$`));
  const id = sentId(reply);
  expect(await carol.waitFor((l) => l.startsWith(`MSG ${id} `), 3000)).toMatch(new RegExp(`^MSG ${id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} alice ${ISO_TIME} hello from a$`));
  // C delivered it (classic session); every copy says so, so nobody offers it again.
  await eventually(async () => expect(await copies(id)).toEqual(NAMES.map(() => ({ delivered: true, read: false }))), 5000);
  // The reply goes the other way.
  const back = await carol.request("SEND alice got it");
  expect(back).toMatch(/ DELIVERED$/);
  await alice.waitFor((l) => l.startsWith(`MSG ${sentId(back)} carol `), 3000);
  // And to B.
  const toBob = await carol.request("SEND bob hi bob");
  expect(toBob).toMatch(/ DELIVERED$/);
  await bob.waitFor((l) => l.startsWith(`MSG ${sentId(toBob)} carol `), 3000);
  await new Promise((r) => setTimeout(r, 500));
  expect(msgIds(carol, id)).toHaveLength(1);
}, 30_000);

test("a message for an offline user is delivered exactly once, in whichever cluster they log in", async () => {
  await register("c", "dave");
  const { c: bob } = await login("b", "bob2", { register: true });
  const reply = await bob.request("SEND dave while you were out");
  expect(reply).toMatch(/ STORED$/);
  const id = sentId(reply);
  // Every cluster holds an undelivered copy.
  await eventually(async () => expect(await copies(id)).toEqual(NAMES.map(() => ({ delivered: false, read: false }))), 5000);
  const { c: onA } = await login("a", "dave");
  await onA.waitFor((l) => l.startsWith(`MSG ${id} bob2 `), 3000);
  // Delivered on A: the state reaches B and C.
  await eventually(async () => expect(await copies(id)).toEqual(NAMES.map(() => ({ delivered: true, read: false }))), 5000);
  const { c: onC } = await login("c", "dave");
  await onA.waitFor(/^BYE replaced$/, 5000);
  await new Promise((r) => setTimeout(r, 800));
  expect(msgIds(onA, id)).toHaveLength(1);
  expect(msgIds(onC, id)).toHaveLength(0);
  // A third login (on B) gets nothing either.
  const { c: onB } = await login("b", "dave");
  await new Promise((r) => setTimeout(r, 500));
  expect(msgIds(onB, id)).toHaveLength(0);
}, 30_000);

test("READ and DELETE reach every copy; a deleted message stays deleted", async () => {
  await register("a", "erin");
  const { c: alice } = await login("a", "alice3", { register: true });
  const m1 = sentId(await alice.request("SEND erin first"));
  const m2 = sentId(await alice.request("SEND erin second"));
  for (const id of [m1, m2]) await eventually(async () => expect((await copies(id)).every((c) => c !== undefined)).toBe(true), 5000);
  const { c: erin } = await login("b", "erin");
  await erin.waitFor((l) => l.startsWith(`MSG ${m2} `), 3000);
  expect(await erin.request(`READ ${m1}`)).toMatch(new RegExp(`^MSG ${m1.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} alice3 ${ISO_TIME} first$`));
  await eventually(async () => expect(await copies(m1)).toEqual(NAMES.map(() => ({ delivered: true, read: true }))), 5000);
  expect(await erin.request(`DELETE ${m2}`)).toBe(`OK DELETED ${m2}`);
  await eventually(async () => expect(await copies(m2)).toEqual([undefined, undefined, undefined]), 5000);
  for (const at of NAMES) expect(await sql(at, "SELECT 1 FROM message_tombstones WHERE id = $1", [m2])).toHaveLength(1);
  // INBOX on another cluster shows the same: m1 read, m2 gone.
  const { c: erinC } = await login("c", "erin");
  const inbox = await erinC.requestAll("INBOX");
  expect(inbox.filter((l) => l.startsWith("ITEM "))).toEqual([expect.stringMatching(new RegExp(`^ITEM ${m1.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} alice3 ${ISO_TIME} READ first$`))]);
}, 30_000);

test("ALL from A reaches the users online on B and C", async () => {
  const { c: sender } = await login("a", "herald", { register: true });
  const { c: onB } = await login("b", "listener_b", { register: true });
  const { c: onC } = await login("c", "listener_c", { register: true });
  await sessionEverywhere("listener_b", "b");
  await sessionEverywhere("listener_c", "c");
  // The count: this cluster's sessions plus the ones it knows other (UP) clusters hold.
  const expected = (await sql<{ n: number }>("a", "SELECT count(*)::int AS n FROM sessions WHERE user_name <> 'herald'"))[0]!.n;
  const reply = await sender.request("ALL hear ye");
  expect(reply).toBe(`OK SENT ALL ${expected}`);
  expect(expected).toBeGreaterThanOrEqual(2);
  const pattern = new RegExp(`^MSG ${ID} \\*herald ${ISO_TIME} hear ye$`);
  const lb = await onB.waitFor(pattern, 3000);
  const lc2 = await onC.waitFor(pattern, 3000);
  expect(lb.split(" ")[1]).toBe(lc2.split(" ")[1]);
  // Never stored anywhere.
  for (const at of NAMES) expect(await sql(at, "SELECT 1 FROM messages WHERE id = $1", [lb.split(" ")[1]])).toHaveLength(0);
  expect(sender.lines.filter((l) => pattern.test(l))).toHaveLength(0);
}, 30_000);

test("a CAP ACK recipient in another cluster that loses the first push gets it by resend; its ACK reaches every copy", async () => {
  const { c: alice } = await login("a", "alice5", { register: true });
  const { c: frank } = await login("c", "frank", { register: true, capAck: true });
  await sessionEverywhere("frank", "c");
  frank.dropNext = 1;
  const reply = await alice.request("SEND frank are you there");
  expect(reply).toMatch(/ DELIVERED$/);
  const id = sentId(reply);
  await frank.waitFor((l) => l.startsWith(`MSG ${id} alice5 `), 5000);
  expect(frank.dropNext).toBe(0);
  // Not delivered anywhere until acknowledged.
  expect((await copies(id))[2]).toEqual({ delivered: false, read: false });
  frank.send(`ACK ${id}`);
  await eventually(async () => expect(await copies(id)).toEqual(NAMES.map(() => ({ delivered: true, read: false }))), 5000);
  // No more resends after the ACK.
  const n = msgIds(frank, id).length;
  await new Promise((r) => setTimeout(r, 1000));
  expect(msgIds(frank, id)).toHaveLength(n);
}, 30_000);
