/**
 * Password work off the hot path (services/router/src/password-work.ts), through real
 * processes: one gateway, two routers (so the throttle and the stream entries are shared), and
 * a hash cost of 2^14 (16 MiB, about 45 ms here), slow enough that a batch waiting for a hash,
 * or a hash inside a transaction, shows, and cheap enough for a busy CI machine.
 */
import { createSocket, type Socket } from "node:dgram";
import { unframe } from "@pesan/shared/protocol";
import { pacedSend, sleep } from "./support/e2e.ts";
import { useCluster } from "./support/fixture.ts";

const fx = useCluster("passwords", { gateways: 1, routers: 2, env: { PASSWORD_HASH_COST: "14" } });

/** Sockets bound to one loopback IP, used in turn: every datagram from the next source port. */
class RotatingSender {
  readonly lines: string[] = [];
  private readonly sockets: Socket[] = [];
  private next = 0;

  static async open(ip: string, n: number): Promise<RotatingSender> {
    const r = new RotatingSender();
    for (let i = 0; i < n; i++) {
      const s = createSocket("udp4");
      s.on("message", (b) => r.lines.push(unframe(b.toString("utf8"))));
      await new Promise<void>((res) => s.bind(0, ip, () => res()));
      r.sockets.push(s);
    }
    return r;
  }

  send(to: string, line: string): void {
    const i = to.lastIndexOf(":");
    this.sockets[this.next++ % this.sockets.length]!.send(line, Number(to.slice(i + 1)), to.slice(0, i));
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

test.each([1, 2, 3])("REGISTER then LOGIN sent in one burst both succeed (%i)", async (n) => {
  const c = await fx.client();
  const from = c.lines.length;
  // One tick. The gateway may still forward them in one stream entry or two, to one router
  // or to both: in every case the LOGIN sees the account.
  c.send(`@r REGISTER pw_burst${n} secret1`);
  c.send(`@l LOGIN pw_burst${n} secret1`);
  expect(await c.waitFor(/^@r /, 10_000, from)).toBe(`@r OK REGISTERED pw_burst${n}`);
  expect(await c.waitFor(/^@l /, 10_000, from)).toMatch(new RegExp(`^@l OK LOGIN pw_burst${n} \\S+ \\S+$`));
  expect(await c.request(`SEND pw_burst${n} to myself`)).toMatch(/^OK SENT \S+ DELIVERED$/);
});

test("UNREGISTER hashing holds nobody else: a SEND sent in the same tick is answered first, and can reach the leaving user", async () => {
  const { c: a } = await fx.login("pw_una", "secret1", { register: true });
  const { c: b } = await fx.login("pw_unb", "secret1", { register: true });
  const fromA = a.lines.length;
  const fromB = b.lines.length;
  a.send("@u UNREGISTER secret1");
  b.send("@s SEND pw_una still there?");
  const sent = await b.waitFor(/^@s /, 10_000, fromB);
  expect(sent).toMatch(/^@s OK SENT \S+ DELIVERED$/);
  // Not answered yet when B's reply came: its hash was still running, outside any transaction.
  expect(a.lines.slice(fromA).some((l) => l.startsWith("@u "))).toBe(false);
  await a.waitFor(/^MSG \S+ pw_unb \S+ still there\?$/, 5000, fromA);
  expect(await a.waitFor(/^@u /, 10_000, fromA)).toBe("@u OK UNREGISTERED");
  expect(await b.request("SEND pw_una gone?")).toBe("ERR NO_SUCH_USER no such user: pw_una");
});

test("200 wrong LOGINs/s from rotating ports of 127.0.0.3 for 10 s: throttled, while 127.0.0.1's heartbeats stay fast and its owner logs in at once", async () => {
  const owner = await fx.client();
  expect(await owner.request("REGISTER pw_victim rightpass1")).toBe("OK REGISTERED pw_victim");
  const attacker = fx.track(await RotatingSender.open("127.0.0.3", 100));

  // The heartbeat client on 127.0.0.1: a tagged /@live? every 100 ms, round trips measured.
  const live = await fx.client();
  const rtts: number[] = [];
  let probes = 0;
  let stopLive = false;
  const liveLoop = (async () => {
    while (!stopLive) {
      const tag = `hb${probes++}`;
      const t0 = performance.now();
      const from = live.lines.length;
      live.send(`@${tag} /@live?`);
      try {
        await live.waitFor((l) => l.startsWith(`@${tag} `), 3000, from);
        rtts.push(performance.now() - t0);
      } catch {
        rtts.push(Infinity);
      }
      await sleep(Math.max(0, 100 - (performance.now() - t0)));
    }
  })();

  // The attack: 2,000 datagrams in 10 s (bounded in count and time).
  const target = fx.address;
  const attack = pacedSend((i) => attacker.send(target, `@a${i} LOGIN pw_victim guess${i}`), 200, 10_000);
  // Near the end of the attack, the owner logs in from 127.0.0.1 with the right password.
  await sleep(8000);
  const t0 = performance.now();
  const login = await owner.request("LOGIN pw_victim rightpass1", 5000);
  const loginMs = performance.now() - t0;
  const sent = await attack;
  stopLive = true;
  await liveLoop;
  await sleep(1500);

  expect(sent).toBe(2000);
  expect(login).toMatch(/^OK LOGIN pw_victim \S+ \S+$/);
  // At once: one try, and within a hash or two of the queue (2 s is the gateway's timeout).
  expect(loginMs).toBeLessThan(2000);

  const replies = attacker.lines.filter((l) => /^@a\d+ /.test(l)).map((l) => l.slice(l.indexOf(" ") + 1));
  const limited = replies.filter((l) => l.startsWith("ERR RATE_LIMITED ")).length;
  const checked = replies.filter((l) => l.startsWith("ERR AUTH")).length;
  // Most guesses never reach a hash; the few that do are bounded by the backoff.
  expect(limited).toBeGreaterThan(sent / 2);
  expect(checked).toBeGreaterThanOrEqual(5);
  expect(checked).toBeLessThan(60);
  expect(replies.some((l) => l.startsWith("OK"))).toBe(false);

  expect(probes).toBeGreaterThan(50);
  expect(live.lines.some((l) => l.includes("UNAVAILABLE"))).toBe(false);
  expect(percentile(rtts, 99)).toBeLessThan(500);
});
