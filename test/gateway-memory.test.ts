/**
 * A gateway's memory while its Redis does not take work (README "Reliability"): a redis-server
 * of the test's own is stopped (SIGSTOP: connections stay open, nothing is answered) and then
 * killed, while clients flood the gateway with large requests. The gateway answers them
 * ERR UNAVAILABLE and its resident memory stays bounded (PUBLISH_MAX_BYTES awaiting Redis at
 * most; nothing queued while the connection is lost). Once Redis is back it serves again.
 */
import { readFileSync } from "node:fs";
import { startCluster, type Cluster } from "@pesan/cluster";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { DEFAULT_ENV } from "./support/fixture.ts";
import { ThrowawayRedis } from "./support/throwaway.ts";
import { RawClient } from "./support/udp.ts";
import { sleep } from "./support/e2e.ts";
import { eventually } from "./support/clusters.ts";

const MAX_BYTES = 4 * 1024 * 1024;
let redis: ThrowawayRedis;
let tdb: TestDatabase;
let cluster: Cluster;
const clients: RawClient[] = [];

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) / 1024;
}

beforeAll(async () => {
  redis = await ThrowawayRedis.create();
  tdb = await createTestDatabase("gwmem");
  cluster = await startCluster({
    databaseUrl: tdb.url,
    redisUrl: redis.url,
    gateways: 1,
    routers: 1,
    busPrefix: "gwmem:",
    // Every flooding client is on 127.0.0.1: the per-IP budget of session-less addresses must
    // not be what stops the flood.
    env: { ...DEFAULT_ENV, PUBLISH_MAX_BYTES: String(MAX_BYTES), IP_RATE_LIMIT_PER_SEC: "1000000", IP_RATE_LIMIT_BURST: "1000000" },
  });
  for (let i = 0; i < 4; i++) clients.push(await RawClient.open(cluster.addresses[0]!));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
  await tdb?.drop();
  await redis?.destroy();
});

/**
 * Each client sends `perSecond` requests of about 3.9 KB (a SEND of almost 4,000 bytes) for
 * `ms`; returns how many were sent and the highest gateway RSS seen meanwhile.
 */
async function flood(pid: number, ms: number, perSecond: number): Promise<{ sent: number; peakMiB: number }> {
  const body = "x".repeat(3900);
  let sent = 0;
  let peak = rssMiB(pid);
  const end = Date.now() + ms;
  const tickMs = 20;
  while (Date.now() < end) {
    for (const c of clients) for (let i = 0; i < (perSecond * tickMs) / 1000; i++) c.send(`@f${sent++} SEND nobody ${body}`);
    peak = Math.max(peak, rssMiB(pid));
    await sleep(tickMs);
  }
  return { sent, peakMiB: peak };
}

const unavailable = () => clients.reduce((n, c) => n + c.lines.filter((l) => /^@f\d+ ERR UNAVAILABLE/.test(l)).length, 0);

test("Redis stopped, then killed, under a flood of large requests: ERR UNAVAILABLE, and the gateway's RSS stays bounded", async () => {
  const gw = cluster.gateways[0]!;
  const pid = gw.proc!.pid!;
  // Warm up through a working Redis, so the baseline includes the normal working set.
  await flood(pid, 1000, 1500);
  await sleep(1500);
  const base = rssMiB(pid);
  for (const c of clients) c.lines.length = 0;

  redis.signal("SIGSTOP");
  try {
    const stopped = await flood(pid, 6000, 1500);
    // Everything got its answer: ERR UNAVAILABLE at once past the byte bound, at the 2 s
    // deadline for the few megabytes that were waiting on Redis.
    await sleep(2500);
    const answered = unavailable();
    expect(answered).toBeGreaterThan(stopped.sent * 0.5);
    // Offered: ~140 MB. Held: at most PUBLISH_MAX_BYTES (4 MiB) of it, plus the garbage of the
    // datagrams passing through (V8 lets its heap grow before it collects): measured +66 to
    // +85 MiB here, against +277 MiB after 6 s, and growing, with no byte bound.
    expect(stopped.peakMiB - base).toBeLessThan(150);
  } finally {
    redis.signal("SIGCONT");
  }

  await redis.kill();
  for (const c of clients) c.lines.length = 0;
  const killed = await flood(pid, 3000, 1500);
  await sleep(2500);
  expect(unavailable()).toBeGreaterThan(killed.sent * 0.5);
  expect(killed.peakMiB - base).toBeLessThan(150);
  expect(gw.running).toBe(true);

  await redis.start();
  const probe = clients[0]!;
  await eventually(async () => expect(await probe.request("/@live?", 1000)).toBe("yes"), 20_000, 200);
}, 90_000);
