import { publishedRtt, RTT_WINDOW, RttEstimator } from "./rtt.ts";

test("the first sample is the distance; a quicker one lowers it at once, a slower one does not raise it", () => {
  const e = new RttEstimator();
  expect(e.sample(40)).toBe(40);
  expect(e.sample(12)).toBe(12);
  expect(e.sample(300)).toBe(12);
  expect(e.distanceMs).toBe(12);
});

test("a sample that is not a finite number >= 0 is refused and changes nothing", () => {
  const e = new RttEstimator();
  e.sample(10);
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => e.sample(bad)).toThrow(RangeError);
  expect(e.distanceMs).toBe(10);
});

test("the published value holds while the distance stays within max(3 ms, 10%) of it, then follows", () => {
  expect(publishedRtt(undefined, 12.4)).toBe(12);
  expect(publishedRtt(12, 14.9)).toBe(12);
  expect(publishedRtt(12, 9)).toBe(12);
  expect(publishedRtt(12, 15.2)).toBe(15);
  expect(publishedRtt(12, 8.9)).toBe(9);
  // Far away, 10% is the margin: 200 ms holds from 180 to 220.
  expect(publishedRtt(200, 219)).toBe(200);
  expect(publishedRtt(200, 221)).toBe(221);
});

test("a loaded machine's slow answers do not move a peer's distance while a quick one is in the window", () => {
  const e = new RttEstimator();
  const seen = new Set<number>();
  // A peer 10 ms away, answering in 10..13 ms, most answers late by up to 80 ms more.
  for (let i = 0; i < 200; i++) seen.add(e.sample(i % RTT_WINDOW === 0 ? 10 + 3 * Math.abs(Math.sin(i)) : 10 + 80 * Math.abs(Math.sin(i))));
  expect([...seen]).toEqual([10]);
});

test("a path that got longer shows after RTT_WINDOW hellos; reset starts over from the next sample", () => {
  const e = new RttEstimator();
  e.sample(10);
  for (let i = 1; i < RTT_WINDOW; i++) expect(e.sample(90)).toBe(10);
  expect(e.sample(90)).toBe(90);
  e.reset();
  expect(e.distanceMs).toBeUndefined();
  // Within the hysteresis of what was published (90): still 90; farther: the new value.
  expect(e.sample(95)).toBe(90);
  e.reset();
  expect(e.sample(30)).toBe(30);
});
