/**
 * "Nearest first" is measured: three linked clusters on one machine, where a's PEERS lists b
 * before c (configured nearest), but b's sync endpoint is 80 ms farther away (a latency proxy
 * in front of it). Once a's peer-sync has measured both links, a's `SERVERS` lists c before b,
 * and so does a's `ERR FULL` (QUOTA=1) for a user who cannot get in.
 */
import { eventually, parseServers, useLinkedClusters } from "./support/clusters.ts";
import { RawClient } from "./support/udp.ts";

const EXTRA_MS = 80;
const fx = useLinkedClusters({
  names: ["a", "b", "c"],
  // Only a needs a gateway and a router: b's and c's addresses are what a's lists show.
  routers: ["a"],
  intervalMs: 200,
  slowSync: { b: EXTRA_MS },
  routerEnv: (): Record<string, string> => ({ QUOTA: "1" }),
});

let occupant: RawClient;

beforeAll(async () => {
  occupant = fx.track(await RawClient.open(fx.addr("a")));
  for (const u of ["first", "second"]) expect(await occupant.request(`REGISTER ${u} secret1`)).toBe(`OK REGISTERED ${u}`);
  // The one place on a is taken: by this session, which also asks SERVERS below.
  expect(await occupant.request("LOGIN first secret1")).toMatch(/^OK LOGIN first /);
}, 30_000);

test("a's configuration says b is nearest, but b's sync link is slower: SERVERS lists c first", async () => {
  const b = fx.lc.get("b");
  const c = fx.lc.get("c");
  // What the operator configured: b first in a's PEERS.
  const proximity = await fx.sql<{ name: string; proximity: number }>("a", "SELECT name, proximity FROM server_list WHERE NOT is_self ORDER BY proximity");
  expect(proximity.map((r) => r.name)).toEqual(["b", "c"]);
  const measured = async () =>
    Object.fromEntries(
      (await fx.sql<{ name: string; rtt_ms: number | null }>("a", "SELECT name, rtt_ms FROM server_list WHERE NOT is_self")).map((r) => [r.name, r.rtt_ms]),
    );
  const servers = async () => parseServers(await occupant.requestAll("SERVERS", 3000));
  const rows = await eventually(
    async () => {
      // Both links measured first (a peer not measured yet is listed after those that are),
      // b's with the proxy's 80 ms in it...
      const rtt = await measured();
      expect(rtt.c).toEqual(expect.any(Number));
      expect(rtt.b).toBeGreaterThanOrEqual(EXTRA_MS - 10);
      // ...then what a user sees.
      const rows = await servers();
      expect(rows.map((r) => `${r.name} ${r.state}`)).toEqual(["a UP", "c UP", "b UP"]);
      return rows;
    },
    30_000,
    200,
  );
  expect(rows.map((r) => r.address)).toEqual([fx.addr("a"), c.address, b.address]);
  // And it stays so, check after check (no flapping back to the configured order).
  for (let i = 0; i < 10; i++) {
    const order = (await servers()).map((r) => r.name).join(" ");
    if (order !== "a c b") throw new Error(`SERVERS on a went back to ${order} (rtt_ms: ${JSON.stringify(await measured())})`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // What an operator sees of it: the distances in a's /healthz.
  const health = (await (await fetch(`http://127.0.0.1:${fx.lc.get("a").peerSync.httpPort}/healthz`)).json()) as { links: Record<string, { rttMs?: number }> };
  expect(health.links.b!.rttMs).toBeGreaterThanOrEqual(EXTRA_MS - 10);
  expect(health.links.c!.rttMs).toBeLessThan(health.links.b!.rttMs! - 25);
}, 45_000);

test("ERR FULL on a lists c before b as well", async () => {
  const late = fx.track(await RawClient.open(fx.addr("a")));
  await eventually(async () => expect(await late.request("LOGIN second secret1")).toBe(`ERR FULL ${fx.addr("c")} ${fx.addr("b")}`), 20_000, 200);
}, 30_000);
