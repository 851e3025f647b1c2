import { publishedRtt, RttEstimator, smoothRtt } from "./rtt.ts";

test("the first sample is taken as it is; later ones move the SRTT by an eighth (RFC 6298)", () => {
  expect(smoothRtt(undefined, 40)).toBe(40);
  expect(smoothRtt(40, 48)).toBe(41);
  expect(smoothRtt(41, 41)).toBe(41);
  expect(smoothRtt(8, 0)).toBe(7);
});

test("a sample that is not a finite number >= 0 is refused", () => {
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => smoothRtt(10, bad)).toThrow(RangeError);
});

test("the published value holds while the SRTT stays within max(3 ms, 10%) of it, then follows", () => {
  expect(publishedRtt(undefined, 12.4)).toBe(12);
  expect(publishedRtt(12, 14.9)).toBe(12);
  expect(publishedRtt(12, 9)).toBe(12);
  expect(publishedRtt(12, 15.2)).toBe(15);
  expect(publishedRtt(12, 8.9)).toBe(9);
  // Far away, 10% is the margin: 200 ms holds from 180 to 220.
  expect(publishedRtt(200, 219)).toBe(200);
  expect(publishedRtt(200, 221)).toBe(221);
});

test("one slow answer does not move a steady peer's published distance; a real move does", () => {
  const e = new RttEstimator();
  expect(e.sample(10)).toBe(10);
  for (let i = 0; i < 20; i++) e.sample(10);
  // A 30 ms hiccup: SRTT 12.5, within the hysteresis.
  expect(e.sample(30)).toBe(10);
  for (let i = 0; i < 20; i++) e.sample(10);
  expect(e.smoothedMs).toBeCloseTo(10, 0);
  // Noise around 10 ms (7..13) never changes what is published.
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(e.sample(10 + 3 * Math.sin(i)));
  expect([...seen]).toEqual([10]);
  // The peer moved to 90 ms: within a few dozen checks it is published near that.
  let last = 0;
  for (let i = 0; i < 60; i++) last = e.sample(90);
  expect(last).toBeGreaterThanOrEqual(81);
  expect(last).toBeLessThanOrEqual(90);
});
