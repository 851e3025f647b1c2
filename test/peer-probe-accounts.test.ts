/**
 * Probe accounts stay invisible across clusters (docs/protocol.md "Probe accounts"): two linked
 * clusters (a, b; a gateway, a router and peer-sync each). A probe account registered and
 * logged in on A reaches B's users table and sessions like any account, yet B's WHO, ONLINE,
 * ALL and SERVERS (A's announced online count) leave it out, by the same name rule.
 */
import { eventually, useLinkedClusters } from "./support/clusters.ts";
import { loginClient } from "./support/e2e.ts";
import { RawClient } from "./support/udp.ts";

const PROBE_PASSWORD = "probe-pass-456";
const fx = useLinkedClusters({ names: ["a", "b"], intervalMs: 200, env: { OUTBOX_POLL_MS: "50" }, routerEnv: () => ({ PROBE_PASSWORD }) });

async function login(at: string, user: string, password: string) {
  const r = await loginClient(fx.addr(at), user, password, { register: true });
  fx.track(r.c);
  return r.c;
}

test("a probe account on A is replicated to B, and B's users do not see or count it", async () => {
  const probe = fx.track(await RawClient.open(fx.addr("a")));
  expect(await probe.request(`REGISTER probe-a1 ${PROBE_PASSWORD}`)).toBe("OK REGISTERED probe-a1");
  expect(await probe.request(`LOGIN probe-a1 ${PROBE_PASSWORD}`)).toMatch(/^OK LOGIN probe-a1 /);
  // Alone online, its own list is empty: it does not list itself.
  expect(await probe.waitFor(/^ONLINE/)).toBe("ONLINE");
  const ann = await login("a", "ann", "secret1");
  // B holds the probe's account and knows its session (held by A) before bob looks.
  await eventually(async () => {
    expect(await fx.sql("b", "SELECT name FROM users WHERE name = 'probe-a1'")).toHaveLength(1);
    expect(await fx.sql("b", "SELECT user_name FROM sessions WHERE cluster = 'a' ORDER BY user_name")).toEqual([{ user_name: "ann" }, { user_name: "probe-a1" }]);
  }, 10_000);

  const bob = await login("b", "bob", "secret2");
  expect(bob.lines.find((l) => l.startsWith("ONLINE"))).toBe("ONLINE ann bob");
  expect(await bob.requestAll("WHO")).toEqual(["ONLINE ann bob", "OK WHO 2"]);
  // SERVERS on B: A's online count as A announces it (its users only).
  await eventually(async () => expect((await bob.requestAll("SERVERS")).find((l) => l.startsWith("SERVER a "))).toMatch(/ UP 1\/\d+$/), 10_000);

  const probeFrom = probe.lines.length;
  const annFrom = ann.lines.length;
  expect(await bob.request("ALL hi from b")).toBe("OK SENT ALL 1");
  // ann (on A) gets the broadcast through peer-sync; the probe next to her does not.
  expect(await ann.waitFor(/^MSG \S+ \*bob /, 10_000, annFrom)).toMatch(/ hi from b$/);
  expect((await probe.settle(500, probeFrom)).filter((l) => l.startsWith("MSG"))).toEqual([]);
});
