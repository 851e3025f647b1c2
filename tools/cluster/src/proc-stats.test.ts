import { cpuBetween, cpuMs, peakRssMb } from "./proc-stats.ts";

test("this process's CPU time grows with work and its peak RSS is plausible", () => {
  const before = cpuMs(process.pid)!;
  const until = Date.now() + 200;
  let x = 0;
  while (Date.now() < until) x += Math.sqrt(x + 1);
  const after = cpuMs(process.pid)!;
  expect(x).toBeGreaterThan(0);
  // 200 ms of busy loop: at least 100 ms of CPU at 10 ms tick granularity.
  expect(after - before).toBeGreaterThanOrEqual(100);
  const rss = peakRssMb(process.pid)!;
  expect(rss).toBeGreaterThanOrEqual(Math.floor(process.memoryUsage().rss / 1024 / 1024) - 1);
});

test("a process that is not there reads as undefined and drops out of the difference", () => {
  expect(cpuMs(2 ** 22 + 1)).toBeUndefined();
  expect(peakRssMb(2 ** 22 + 1)).toBeUndefined();
  const d = cpuBetween(new Map([["a", 10], ["b", undefined]]), new Map([["a", 35], ["b", 5], ["c", 1]]));
  expect([...d]).toEqual([["a", 25]]);
});
