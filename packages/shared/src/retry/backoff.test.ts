import { Backoff } from "./backoff.ts";

test("doubles from min to the cap, each wait in the upper half of its step", () => {
  const low = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0 });
  expect(Array.from({ length: 7 }, () => low.next())).toEqual([50, 100, 200, 400, 500, 500, 500]);
  const high = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0.999999 });
  expect(Array.from({ length: 7 }, () => high.next())).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
});

test("jitter spreads a fleet: 1000 clients at the cap do not all wait the same", () => {
  const waits = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    const b = new Backoff({ minMs: 50, maxMs: 1000 });
    for (let k = 0; k < 10; k++) b.next();
    waits.add(b.next());
  }
  expect(waits.size).toBeGreaterThan(100);
  for (const w of waits) expect(w).toBeGreaterThanOrEqual(500);
  for (const w of waits) expect(w).toBeLessThanOrEqual(1000);
});

test("reset starts again from the smallest step; many failures never overflow the cap", () => {
  const b = new Backoff({ minMs: 10, maxMs: 1000, random: () => 0.999999 });
  for (let i = 0; i < 5000; i++) expect(b.next()).toBeLessThanOrEqual(1000);
  b.reset();
  expect(b.next()).toBe(10);
});

test("bad bounds are refused", () => {
  expect(() => new Backoff({ minMs: 0 })).toThrow(/bad backoff bounds/);
  expect(() => new Backoff({ minMs: 500, maxMs: 100 })).toThrow(/bad backoff bounds/);
});
