/**
 * Bounded storage, as a user of a real cluster sees it (README "Reliability"), with tiny limits
 * set through the settings: a recipient's box of undelivered messages (BOX_LIMIT) and the
 * gateways' `in` stream while no router reads it (IN_STREAM_MAX_LEN). Nothing accepted is lost.
 */
import { Redis } from "ioredis";
import { useCluster } from "./support/fixture.ts";
import { eventually } from "./support/clusters.ts";
import { metricSum, sleep } from "./support/e2e.ts";

const BOX = 3;
const IN_MAX = 20;
const fx = useCluster("bounded", { gateways: 1, routers: 1, env: { BOX_LIMIT: String(BOX), IN_STREAM_MAX_LEN: String(IN_MAX) } });

test("a full box: the sender gets ERR BOX_FULL; the messages taken are all delivered at the next login; then SENDs go again", async () => {
  const { c: alice } = await fx.login("bx_alice", "secret1", { register: true });
  const bobReg = await fx.client();
  expect(await bobReg.request("REGISTER bx_bob secret1")).toBe("OK REGISTERED bx_bob");

  const replies: string[] = [];
  for (let i = 1; i <= BOX + 2; i++) replies.push(await alice.request(`SEND bx_bob note ${i}`));
  expect(replies.slice(0, BOX).every((r) => /^OK SENT \S+ STORED$/.test(r))).toBe(true);
  expect(replies.slice(BOX)).toEqual([expect.stringMatching(/^ERR BOX_FULL /), expect.stringMatching(/^ERR BOX_FULL /)]);
  expect(await metricSum(fx.cluster.routers[0]!, "pesan_box_full_total")).toBe(2);

  const { c: bob } = await fx.login("bx_bob", "secret1");
  for (let i = 1; i <= BOX; i++) await bob.waitFor(new RegExp(`^MSG \\S+ bx_alice \\S+ note ${i}$`));
  await sleep(300);
  expect(bob.lines.filter((l) => l.startsWith("MSG "))).toHaveLength(BOX);
  // Delivered, so out of the box: the sender may send again.
  expect(await alice.request("SEND bx_bob note again")).toMatch(/^OK SENT \S+ DELIVERED$/);
  await bob.waitFor(/^MSG \S+ bx_alice \S+ note again$/);
});

test("routers down: once the in stream holds IN_STREAM_MAX_LEN entries the gateway answers ERR UNAVAILABLE at once and adds nothing; a router back delivers every request taken before", async () => {
  const { c: alice } = await fx.login("in_alice", "secret1", { register: true });
  const { c: bob } = await fx.login("in_bob", "secret1", { register: true });
  const redis = new Redis(process.env.REDIS_URL!);
  const inKey = `${fx.prefix}in`;
  const router = fx.cluster.routers[0]!;
  try {
    await router.stop();
    // One datagram per entry (the gateway packs what one tick read): 40 ms apart, twice as
    // many as the stream may hold, so the gateway's 200 ms length check sees it fill up.
    const N = 3 * IN_MAX;
    for (let i = 1; i <= N; i++) {
      alice.send(`@q${i} SEND in_bob queued ${i}`);
      await sleep(40);
    }
    const busy = (i: number) => alice.lines.some((l) => l.startsWith(`@q${i} ERR UNAVAILABLE server busy`));
    await eventually(async () => expect(busy(N)).toBe(true), 5000, 100);
    const refused = Array.from({ length: N }, (_, i) => i + 1).filter(busy);
    const taken = Array.from({ length: N }, (_, i) => i + 1).filter((i) => !busy(i));
    expect(refused.length).toBeGreaterThanOrEqual(N - IN_MAX - 15);
    // Bounded: the limit plus what arrived between two checks (200 ms, 5 entries here, and
    // the clients' few other datagrams).
    const len = await redis.xlen(inKey);
    expect(len).toBeGreaterThanOrEqual(IN_MAX);
    expect(len).toBeLessThanOrEqual(IN_MAX + 10);
    expect(await metricSum(fx.cluster.gateways[0]!, "pesan_gateway_refused_total")).toBeGreaterThanOrEqual(refused.length);

    await router.restart();
    for (const i of taken) await bob.waitFor(new RegExp(`^MSG \\S+ in_alice \\S+ queued ${i}$`), 15_000);
    await sleep(500);
    const got = bob.lines.filter((l) => / queued \d+$/.test(l)).map((l) => Number(/ queued (\d+)$/.exec(l)![1]));
    expect(got.sort((a, b) => a - b)).toEqual(taken);
    // Drained below the limit: the gateway takes requests again.
    await eventually(async () => expect(await alice.request("SEND in_bob after")).toMatch(/^OK SENT \S+ DELIVERED$/), 5000, 200);
  } finally {
    redis.disconnect();
    if (!router.running) await router.restart();
  }
}, 60_000);
