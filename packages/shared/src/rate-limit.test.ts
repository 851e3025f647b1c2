import { RateLimiter } from "./rate-limit.ts";

describe("RateLimiter", () => {
  test("allows the burst, then tells once and stays silent while limited", () => {
    const rl = new RateLimiter(10, 5);
    const verdicts = Array.from({ length: 8 }, () => rl.take("a", 1000));
    expect(verdicts).toEqual(["ok", "ok", "ok", "ok", "ok", "limited-first", "limited", "limited"]);
  });

  test("a limited address is let through again only once its bucket is half full, and told again next time", () => {
    const rl = new RateLimiter(10, 4);
    for (let i = 0; i < 4; i++) expect(rl.take("a", 0)).toBe("ok");
    expect(rl.take("a", 0)).toBe("limited-first"); // tokens -1
    expect(rl.take("a", 100)).toBe("limited"); // +1 -1 = -1: one token refilled is not enough
    expect(rl.take("a", 400)).toBe("ok"); // -1 + 3 = 2 >= half of 4
    for (let i = 0; i < 1; i++) expect(rl.take("a", 400)).toBe("ok");
    expect(rl.take("a", 400)).toBe("limited-first");
  });

  test("a flood faster than the refill rate stays held while it lasts", () => {
    const rl = new RateLimiter(4000, 4000);
    const verdicts: string[] = [];
    for (let i = 0; i < 20_000; i++) verdicts.push(rl.take("a", i * 0.1)); // 10,000/s for 2 s
    const first = verdicts.indexOf("limited-first");
    expect(first).toBeGreaterThan(4000);
    expect(verdicts.filter((v) => v === "limited-first")).toHaveLength(1);
    expect(verdicts.slice(first + 1).every((v) => v === "limited")).toBe(true);
  });

  test("addresses are independent", () => {
    const rl = new RateLimiter(1, 1);
    expect(rl.take("a", 0)).toBe("ok");
    expect(rl.take("b", 0)).toBe("ok");
    expect(rl.take("a", 0)).toBe("limited-first");
    expect(rl.take("b", 0)).toBe("limited-first");
  });

  test("2,000/s sustained passes the default limit", () => {
    const rl = new RateLimiter(4000, 4000);
    let limited = 0;
    for (let i = 0; i < 10_000; i++) if (rl.take("a", i * 0.5) !== "ok") limited++; // 2,000/s for 5 s
    expect(limited).toBe(0);
  });

  test("sweep forgets idle addresses only", () => {
    const rl = new RateLimiter(10, 2);
    rl.take("idle", 0);
    rl.take("busy", 0);
    rl.take("busy", 0);
    rl.sweep(100); // idle refilled; busy has 1 of 2
    expect(rl.size).toBe(1);
  });
});
