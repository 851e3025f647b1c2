/**
 * Hostile and heavy input at the gateway (1 gateway, 1 router, default rate limit): random
 * bytes, oversize datagrams and invalid UTF-8 never crash it and are answered `ERR ...`;
 * 2,000 datagrams/s from one address is allowed. The flood is in flood.test.ts.
 */
import { linesMatching, pacedSend, prng, sentId, sleep } from "./support/e2e.ts";
import { useCluster } from "./support/fixture.ts";

// The 500 random datagrams come from one sessionless address at ~2,000/s, past the per-IP
// burst (IP_RATE_LIMIT_BURST, 100): this file is about malformed input, so that limit is raised
// here; the per-IP limit has its own tests (test/alone/per-ip-sweep.test.ts, test/flood.test.ts).
const fx = useCluster("badinput", { gateways: 1, routers: 1, env: { IP_RATE_LIMIT_BURST: "1000" } });
const { client } = fx;

const gatewayStillServes = () => fx.gatewayStillServes();

test("500 random datagrams (seeded, 0..9000 bytes): answered ERR within 3x the bytes received, the gateway stays up", async () => {
  const rand = prng(0x5eed);
  const c = await client();
  let sent = 0;
  let bytes = 0;
  for (let i = 0; i < 500; i++) {
    const size = Math.floor(rand() * 9001);
    const words = new Uint32Array(Math.ceil(size / 4));
    for (let j = 0; j < words.length; j++) words[j] = Math.floor(rand() * 2 ** 32);
    const buf = Buffer.from(words.buffer, 0, size);
    c.send(buf);
    sent++;
    bytes += size;
    if (i % 10 === 9) await sleep(5);
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && c.lines.length < sent) await sleep(50);
  await sleep(300);
  const errs = c.lines.filter((l) => /^ERR [A-Z_]+ /.test(l));
  expect(c.lines.filter((l) => !/^ERR (BAD_REQUEST|UNKNOWN_COMMAND|TOO_LONG) /.test(l))).toEqual([]);
  // An address without a session gets at most 3x what it sent (docs/protocol.md "Security");
  // these are large enough on average that every one is answered.
  expect(errs).toHaveLength(sent);
  expect(c.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0)).toBeLessThanOrEqual(3 * bytes);
  await gatewayStillServes();
});

test("oversize datagrams and invalid UTF-8: ERR BAD_REQUEST each, never a crash", async () => {
  const c = await client();
  const cases: Buffer[] = [
    Buffer.alloc(8193, 0x41),
    Buffer.alloc(9000, 0x20),
    Buffer.alloc(60_000, 0x78),
    Buffer.concat([Buffer.from("SEND bob "), Buffer.alloc(8200, 0x61)]),
    Buffer.from([0xff, 0xfe, 0xfd]),
    Buffer.from([0xc0, 0xaf]),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xf4, 0x90, 0x80, 0x80]),
    Buffer.concat([Buffer.from("@t1 WHO "), Buffer.from([0x80])]),
    Buffer.from("LOGIN a\0b secret1"),
  ];
  for (const [i, buf] of cases.entries()) {
    const from = c.lines.length;
    c.send(buf);
    const line = await c.waitFor(() => true, 3000, from);
    expect([i, line]).toEqual([i, expect.stringMatching(/^ERR BAD_REQUEST \S/)]);
  }
  await gatewayStillServes();
});

test("2,000 datagrams/s for 1 s from one logged-in address (/@live?) is never rate-limited", async () => {
  // let the flood's bucket and the gateway settle
  await sleep(1000);
  // A session's address: addresses without one also share a smaller budget per IP
  // (IP_RATE_LIMIT_PER_SEC), so rotating ports cannot multiply the per-address limit.
  const { c } = await fx.login("busy_a", "secret1", { register: true });
  const before = c.lines.length;
  const sent = await pacedSend(() => c.send("/@live?"), 2000, 1000);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && c.lines.length - before < sent) await sleep(50);
  await sleep(300);
  expect(sent).toBe(2000);
  expect(linesMatching(c, /RATE_LIMITED/)).toEqual([]);
  const yes = linesMatching(c, /^yes$/, before).length;
  expect(yes).toBeGreaterThanOrEqual(Math.ceil(sent * 0.95));
  expect(c.lines.slice(before).filter((l) => l !== "yes")).toEqual([]);
  await gatewayStillServes();
});
