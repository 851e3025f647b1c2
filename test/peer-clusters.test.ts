/**
 * Update Server across three clusters on one machine (a, b, c), each a gateway, a router and a
 * peer-sync process with its own database: what a user sees with `SERVERS` on each cluster.
 */
import { RawClient } from "./support/udp.ts";
import { eventually, serversAt, startLinkedClusters, type LinkedClusters, type ServerLine } from "./support/clusters.ts";

const INTERVAL_MS = 200;
const QUOTA: Record<string, number> = { a: 100, b: 200, c: 300 };
let lc: LinkedClusters;

beforeAll(async () => {
  lc = await startLinkedClusters({ names: ["a", "b", "c"], intervalMs: INTERVAL_MS, routerEnv: (name) => ({ QUOTA: String(QUOTA[name]) }) });
}, 60_000);

afterAll(async () => {
  await lc?.stop();
});

const summary = (rows: ServerLine[]) => rows.map((r) => `${r.name} ${r.state}`);

/**
 * What cluster `at` must list: itself first, then the others in its PEERS order. All are on
 * this machine, so their measured round trips are in one band and PEERS order is the tie-break
 * (peer-nearest.test.ts has a cluster made farther away).
 */
const expectedOrder = (at: string) => [at, ...["a", "b", "c"].filter((n) => n !== at)];

async function healthOf(name: string): Promise<{ status: number; body: { links: Record<string, { state: string }> } }> {
  const r = await fetch(`http://127.0.0.1:${lc.get(name).peerSync.httpPort}/healthz`);
  return { status: r.status, body: (await r.json()) as { links: Record<string, { state: string }> } };
}

test("after start, SERVERS on every cluster lists a, b and c, all UP, nearest first, with each one's address and quota", async () => {
  for (const c of lc.clusters) {
    const rows = await eventually(async () => {
      const rows = await serversAt(c.address);
      expect(summary(rows)).toEqual(expectedOrder(c.name).map((n) => `${n} UP`));
      return rows;
    }, 15_000);
    for (const r of rows) {
      expect(r.address).toBe(lc.get(r.name).address);
      expect(r.quota).toBe(QUOTA[r.name]);
    }
  }
  const health = await healthOf("a");
  expect(health.status).toBe(200);
  expect(health.body.links).toMatchObject({ b: { state: "UP", failures: 0, outboxDepth: expect.any(Number), lagSeconds: expect.any(Number) }, c: { state: "UP", failures: 0 } });
});

test("a user online on A shows in A's online count on B and C", async () => {
  const u = await RawClient.open(lc.get("a").address);
  try {
    expect(await u.request("REGISTER alice secret1")).toBe("OK REGISTERED alice");
    expect(await u.request("LOGIN alice secret1")).toMatch(/^OK LOGIN alice \S+ \S+$/);
    for (const at of ["b", "c"]) {
      await eventually(async () => {
        const a = (await serversAt(lc.get(at).address)).find((r) => r.name === "a");
        expect(a).toEqual({ name: "a", address: lc.get("a").address, state: "UP", online: 1, quota: 100 });
      }, 5000);
    }
  } finally {
    u.close();
  }
});

test("kill -9 of cluster B: A and C show B DOWN within a few intervals; B restarted is UP again everywhere by itself", async () => {
  const b = lc.get("b");
  await Promise.all([b.peerSync.kill9(), ...b.cluster!.routers.map((p) => p.kill9()), ...b.cluster!.gateways.map((p) => p.kill9())]);
  const killedAt = Date.now();
  const seenDown: number[] = [];
  for (const at of ["a", "c"]) {
    await eventually(async () => {
      const rows = await serversAt(lc.get(at).address);
      expect(summary(rows)).toEqual(expectedOrder(at).map((n) => `${n} ${n === "b" ? "DOWN" : "UP"}`));
      expect(rows.find((r) => r.name === "b")!.online).toBe(0);
    }, 5000, 50);
    seenDown.push(Date.now() - killedAt);
  }
  // Two failed checks 200 ms apart, plus the SERVERS round trips; generous for a busy 2-core box.
  expect(seenDown[0]).toBeLessThan(10 * INTERVAL_MS);
  const health = await healthOf("a");
  expect(health.status).toBe(200);
  expect(health.body.links.b!.state).toBe("DOWN");
  const metrics = await (await fetch(`http://127.0.0.1:${lc.get("a").peerSync.httpPort}/metrics`)).text();
  expect(metrics).toMatch(/^pesan_peer_link_up\{peer="b"[^}]*\} 0$/m);
  expect(metrics).toMatch(/^pesan_peer_link_up\{peer="c"[^}]*\} 1$/m);

  await Promise.all([...b.cluster!.routers.map((p) => p.restart()), ...b.cluster!.gateways.map((p) => p.restart()), b.peerSync.restart()]);
  for (const c of lc.clusters) {
    await eventually(async () => {
      expect(summary(await serversAt(c.address))).toEqual(expectedOrder(c.name).map((n) => `${n} UP`));
    }, 15_000);
  }
});
