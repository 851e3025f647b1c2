/**
 * The periodic session.snapshot repairs drift between clusters' views of who is online
 * (services/peer-sync, kinds.ts): a lost session.up leaves a user invisible elsewhere, a lost
 * session.down leaves a ghost online. Here the drift is made directly in b's database, where
 * only a's next snapshot can fix it; the user-visible result is b's WHO and where b routes a
 * SEND.
 */
import { RawClient } from "./support/udp.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";
import { loginClient } from "./support/e2e.ts";

const SNAPSHOT_MS = 1000;
const fx = useLinkedClusters({ names: ["a", "b"], intervalMs: 200, env: { OUTBOX_POLL_MS: "50", SNAPSHOT_INTERVAL_MS: String(SNAPSHOT_MS) } });
const { addr, sql } = fx;

async function login(at: string, user: string, register = true): Promise<RawClient> {
  const r = await loginClient(addr(at), user, "secret1", { register });
  fx.track(r.c);
  return r.c;
}

async function who(c: RawClient): Promise<string[]> {
  const lines = await c.requestAll("WHO", 3000);
  expect(lines.at(-1)).toMatch(/^OK WHO \d+$/);
  return lines.filter((l) => l.startsWith("ONLINE")).flatMap((l) => l.split(" ").slice(1)).filter(Boolean).sort();
}

test("a session b lost track of comes back within a snapshot interval, and b routes to it again", async () => {
  const alice = await login("a", "rep_alice");
  const bob = await login("b", "rep_bob");
  await eventually(async () => expect(await who(bob)).toContain("rep_alice"), 10_000);
  // Drift: b forgets alice's session (as if her session.up never arrived).
  await sql("b", "DELETE FROM sessions WHERE user_name = 'rep_alice'");
  expect(await who(bob)).not.toContain("rep_alice");
  const lostAt = Date.now();
  await eventually(async () => expect(await who(bob)).toContain("rep_alice"), 10_000);
  const repairedMs = Date.now() - lostAt;
  // Repaired by the snapshot, so within one interval plus the frame's trip (generous for CI).
  expect(repairedMs).toBeLessThan(SNAPSHOT_MS * 5);
  const [row] = await sql<{ cluster: string }>("b", "SELECT cluster FROM sessions WHERE user_name = 'rep_alice'");
  expect(row?.cluster).toBe("a");
  // And b routes to her cluster again: she gets bob's message live.
  expect(await bob.request("SEND rep_alice back?")).toMatch(/^OK SENT \S+/);
  await eventually(async () => expect(alice.lines.some((l) => /^MSG \S+ rep_bob \S+ back\?$/.test(l))).toBe(true), 10_000);
});

test("a ghost session b still holds for a (a lost session.down) is removed by a's snapshot", async () => {
  const bob = await login("b", "rep_bob2");
  const ghost = await login("a", "rep_ghost");
  await eventually(async () => expect(await who(bob)).toContain("rep_ghost"), 10_000);
  // The ghost logs out on a, but b misses the session.down: put her row back on b by hand.
  const [held] = await sql<Record<string, unknown>>("b", "SELECT * FROM sessions WHERE user_name = 'rep_ghost'");
  expect(await ghost.request("LOGOUT")).toMatch(/^OK BYE/);
  await eventually(async () => expect(await who(bob)).not.toContain("rep_ghost"), 10_000);
  const cols = Object.keys(held!);
  await sql("b", `INSERT INTO sessions (${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`, cols.map((k) => held![k]));
  expect(await who(bob)).toContain("rep_ghost");
  await eventually(async () => expect(await who(bob)).not.toContain("rep_ghost"), SNAPSHOT_MS * 5);
});
