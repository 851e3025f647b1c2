/**
 * Two routers sharing one stream (1 gateway, 2 routers): 20 client pairs send 50 tagged
 * messages each at once; every message is stored once and delivered exactly once, and both
 * routers took part.
 */
import type { RawClient } from "./support/udp.ts";
import { metricSum, requestWithRetry, sentId, sleep, sql } from "./support/e2e.ts";
import { useCluster } from "./support/fixture.ts";

const fx = useCluster("routers", { gateways: 1, routers: 2 });
const PAIRS = 20;
const PER_SENDER = 50;

test("20 pairs x 50 tagged messages: each delivered exactly once, 1000 rows, both routers worked", async () => {
  const senders: RawClient[] = [];
  const receivers: RawClient[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const [s, r] = await Promise.all([
      fx.login(`s${i}`, "secret1", { register: true }),
      fx.login(`r${i}`, "secret1", { register: true }),
    ]);
    senders.push(s.c);
    receivers.push(r.c);
  }
  const before = await Promise.all(fx.cluster.routers.map((r) => metricSum(r, "pesan_router_requests_total")));

  const sentIds: string[][] = Array.from({ length: PAIRS }, () => []);
  const started = Date.now();
  await Promise.all(
    senders.map(async (s, i) => {
      for (let j = 0; j < PER_SENDER; j++) {
        const { reply } = await requestWithRetry(s, `p${i}m${j}`, `SEND r${i} pair ${i} message ${j}`, { retryMs: 2500, deadlineMs: 30_000 });
        expect(reply).toMatch(/^OK SENT \S+ DELIVERED$/);
        sentIds[i]!.push(sentId(reply));
      }
    }),
  );
  const elapsed = Date.now() - started;

  // let the last pushes land
  const deadline = Date.now() + 5000;
  const msgCount = (c: RawClient) => c.lines.filter((l) => l.startsWith("MSG ")).length;
  while (Date.now() < deadline && receivers.some((r) => msgCount(r) < PER_SENDER)) await sleep(100);
  await sleep(300);

  const allIds = new Set<string>();
  for (let i = 0; i < PAIRS; i++) {
    const msgs = receivers[i]!.lines.filter((l) => l.startsWith("MSG "));
    const ids = msgs.map((l) => l.split(" ")[1]!);
    // no duplicate, none missing, nothing foreign
    expect([i, ids.length, new Set(ids).size]).toEqual([i, PER_SENDER, PER_SENDER]);
    expect(new Set(ids)).toEqual(new Set(sentIds[i]));
    const bodies = msgs.map((l) => l.split(" ").slice(4).join(" "));
    expect(new Set(bodies)).toEqual(new Set(Array.from({ length: PER_SENDER }, (_, j) => `pair ${i} message ${j}`)));
    expect(msgs.every((l) => l.split(" ")[2] === `s${i}`)).toBe(true);
    for (const id of ids) allIds.add(id);
  }
  expect(allIds.size).toBe(PAIRS * PER_SENDER);

  const rows = await sql<{ n: number; ids: number }>(fx.db.url, "SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM messages");
  expect(rows[0]).toEqual({ n: PAIRS * PER_SENDER, ids: PAIRS * PER_SENDER });
  const perBody = await sql<{ n: number }>(fx.db.url, "SELECT count(*)::int AS n FROM messages GROUP BY sender, body HAVING count(*) > 1");
  expect(perBody).toEqual([]);

  const after = await Promise.all(fx.cluster.routers.map((r) => metricSum(r, "pesan_router_requests_total")));
  const work = after.map((a, i) => a - before[i]!);
  // both routers did some of the SENDs
  expect(work.every((w) => w > 0)).toBe(true);
  expect(work.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(PAIRS * PER_SENDER);
  expect(elapsed).toBeLessThan(30_000);
});

test("a tagged SEND repeated while the first is still in flight, across both routers, is stored and delivered once", async () => {
  const { c: a } = await fx.login("dupx_a", "secret1", { register: true });
  const { c: b } = await fx.login("dupx_b", "secret1", { register: true });
  const TAGS = 30;
  const COPIES = 6;
  const before = await Promise.all(fx.cluster.routers.map((r) => metricSum(r, "pesan_router_requests_total")));
  // Copies go out in separate event-loop turns, so the gateway packs them into separate
  // stream entries that both routers pick up.
  for (let k = 0; k < COPIES; k++) {
    for (let t = 0; t < TAGS; t++) a.send(`@race${t} SEND dupx_b race body ${t}`);
    await new Promise((r) => setImmediate(r));
  }
  const deadline = Date.now() + 10_000;
  const replies = () => a.lines.filter((l) => /^@race\d+ /.test(l));
  while (Date.now() < deadline && replies().length < TAGS * COPIES) await sleep(100);
  await sleep(500);
  for (let t = 0; t < TAGS; t++) {
    const mine = a.lines.filter((l) => l.startsWith(`@race${t} `));
    // every copy answered, all with the first reply
    expect([t, mine.length, new Set(mine).size]).toEqual([t, COPIES, 1]);
    expect(mine[0]).toMatch(/^@race\d+ OK SENT \S+ DELIVERED$/);
  }
  const msgs = b.lines.filter((l) => /^MSG \S+ dupx_a \S+ race body \d+$/.test(l));
  expect(msgs).toHaveLength(TAGS);
  expect(new Set(msgs.map((l) => l.split(" ").slice(4).join(" "))).size).toBe(TAGS);
  const rows = await sql<{ n: number }>(fx.db.url, "SELECT count(*)::int AS n FROM messages WHERE sender = 'dupx_a'");
  expect(rows[0]?.n).toBe(TAGS);
  // both routers handled copies (so some repeats met a first try on the other router)
  const after = await Promise.all(fx.cluster.routers.map((r) => metricSum(r, "pesan_router_requests_total")));
  expect(after.map((x, i) => x - before[i]! > 0)).toEqual([true, true]);
});
