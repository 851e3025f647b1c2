import { afterFailure, blockedFor, clientIp, effectiveCount, limitedText, RULES, throttleKeys, TRUST_MS, verdict, type Failures, type ThrottleState } from "./throttle.ts";

/** Fails `n` times, `gapMs` apart, starting at `t0`; returns the counter and the time of the last failure. */
function failures(rule: (typeof RULES)[keyof typeof RULES], n: number, t0: number, gapMs: number): { f: Failures | undefined; at: number } {
  let f: Failures | undefined;
  let at = t0;
  for (let i = 0; i < n; i++) {
    at = t0 + i * gapMs;
    f = afterFailure(rule, f, at);
  }
  return { f, at };
}

const T0 = 1_700_000_000_000;

describe("one counter", () => {
  test("the first `free` - 1 failures cost nothing; the free-th blocks for baseMs, then the delay doubles", () => {
    const rule = RULES.pair;
    const four = failures(rule, rule.free - 1, T0, 10);
    expect(blockedFor(rule, four.f, four.at)).toBe(0);
    const five = failures(rule, rule.free, T0, 10);
    expect(blockedFor(rule, five.f, five.at)).toBe(1000);
    expect(blockedFor(rule, five.f, five.at + 999)).toBe(1);
    expect(blockedFor(rule, five.f, five.at + 1000)).toBe(0);
    const six = afterFailure(rule, five.f, five.at + 1000);
    expect(blockedFor(rule, six, five.at + 1000)).toBe(2000);
    const seven = afterFailure(rule, six, five.at + 3000);
    expect(blockedFor(rule, seven, five.at + 3000)).toBe(4000);
  });

  test("the delay stops growing at maxMs", () => {
    const rule = RULES.pair;
    const many = failures(rule, rule.free + 40, T0, 1);
    expect(blockedFor(rule, many.f, many.at)).toBe(rule.maxMs);
  });

  test("failures leak away: one per whole decayMs, so a quiet counter is free again", () => {
    const rule = RULES.ip;
    const { f, at } = failures(rule, rule.free + 2, T0, 1);
    expect(effectiveCount(rule, f, at)).toBe(rule.free + 2);
    expect(effectiveCount(rule, f, at + 3 * rule.decayMs - 1)).toBe(rule.free);
    expect(effectiveCount(rule, f, at + 3 * rule.decayMs)).toBe(rule.free - 1);
    // The next failure after the leak starts from the drained count: below free, no delay.
    const later = afterFailure(rule, f, at + 4 * rule.decayMs);
    expect(later.count).toBe(rule.free - 1);
    expect(blockedFor(rule, later, at + 4 * rule.decayMs)).toBe(0);
    expect(effectiveCount(rule, f, at + 1000 * rule.decayMs)).toBe(0);
  });
});

describe("the verdict over the three counters", () => {
  const now = T0 + 60_000;

  test("nothing recorded: go ahead", () => {
    expect(verdict({}, now)).toEqual({ limited: false });
  });

  test("the (account, IP) pair blocks that pair only: the same account from another IP goes ahead", () => {
    const attacker: ThrottleState = { pair: failures(RULES.pair, 10, now - 100, 1).f, ip: failures(RULES.ip, 10, now - 100, 1).f, account: failures(RULES.account, 10, now - 100, 1).f };
    expect(verdict(attacker, now)).toMatchObject({ limited: true, rule: "pair" });
    // The owner at another IP shares only the account counter, which is far below its bound.
    expect(verdict({ account: attacker.account }, now)).toEqual({ limited: false });
  });

  test("one IP guessing many accounts is blocked by the IP counter", () => {
    const s: ThrottleState = { ip: failures(RULES.ip, RULES.ip.free, now - 100, 1).f };
    expect(verdict(s, now)).toMatchObject({ limited: true, rule: "ip" });
  });

  test("many IPs guessing one account: the account counter blocks, except a pair that logged in lately", () => {
    const account = failures(RULES.account, RULES.account.free, now - 100, 1).f;
    expect(verdict({ account }, now)).toMatchObject({ limited: true, rule: "account" });
    expect(verdict({ account, trustedAt: now - 24 * 3_600_000 }, now)).toEqual({ limited: false });
    // Trust expires.
    expect(verdict({ account, trustedAt: now - TRUST_MS }, now)).toMatchObject({ limited: true, rule: "account" });
  });

  test("a trusted pair is still held by its own and its IP's counters", () => {
    const s: ThrottleState = { pair: failures(RULES.pair, RULES.pair.free, now - 100, 1).f, trustedAt: now - 1000 };
    expect(verdict(s, now)).toMatchObject({ limited: true, rule: "pair" });
  });

  test("the longest block is the one reported", () => {
    const s: ThrottleState = { pair: failures(RULES.pair, RULES.pair.free + 3, now - 10, 1).f, ip: failures(RULES.ip, RULES.ip.free, now - 10, 1).f };
    const v = verdict(s, now);
    expect(v).toMatchObject({ limited: true, rule: "pair" });
    expect(v.limited && v.retryAfterMs).toBeGreaterThan(7000);
  });
});

test("keys and texts", () => {
  expect(throttleKeys("ann", "10.0.0.1")).toEqual({ pair: "p ann 10.0.0.1", ip: "i 10.0.0.1", account: "a ann", trusted: "t ann 10.0.0.1" });
  expect(limitedText(1)).toBe("too many failed attempts, try again in 1 s");
  expect(limitedText(2001)).toBe("too many failed attempts, try again in 3 s");
});

test("clientIp: the host of ip:port, or the whole address behind a listed proxy", () => {
  const none = new Set<string>();
  expect(clientIp("127.0.0.3:40001", none)).toBe("127.0.0.3");
  expect(clientIp("[::1]:5000", none)).toBe("::1");
  const proxies = new Set(["10.0.0.5", "::1"]);
  expect(clientIp("10.0.0.5:40001", proxies)).toBe("10.0.0.5:40001");
  expect(clientIp("[::1]:5000", proxies)).toBe("[::1]:5000");
  expect(clientIp("10.0.0.6:40001", proxies)).toBe("10.0.0.6");
});
