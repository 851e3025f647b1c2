import { nearestFirst, rttBand } from "./server-order.ts";

const row = (name: string, proximity: number, rttMs?: number, isSelf = false) => ({ name, proximity, rttMs, isSelf });
const names = (rows: Array<{ name: string }>) => rows.map((r) => r.name);

test("this cluster first, then by measured round trip, even against the configured order", () => {
  expect(names(nearestFirst([row("b", 10, 95), row("c", 20, 4), row("a", 0, undefined, true)]))).toEqual(["a", "c", "b"]);
});

test("round trips in one 20 ms band are the same distance: the configured order decides", () => {
  expect(rttBand(0)).toBe(0);
  expect(rttBand(19)).toBe(0);
  expect(rttBand(20)).toBe(1);
  expect(names(nearestFirst([row("c", 20, 3), row("b", 10, 17)]))).toEqual(["b", "c"]);
  expect(names(nearestFirst([row("c", 20, 41), row("b", 10, 59)]))).toEqual(["b", "c"]);
  expect(names(nearestFirst([row("c", 20, 39), row("b", 10, 40)]))).toEqual(["c", "b"]);
});

test("servers never measured come after the measured ones, in configured order, then by name", () => {
  expect(names(nearestFirst([row("z", 10), row("y", 30, 900), row("x", 20), row("w", 10)]))).toEqual(["y", "w", "z", "x"]);
});

test("the input is not changed", () => {
  const rows = [row("b", 20, 50), row("a", 10, 5)];
  nearestFirst(rows);
  expect(names(rows)).toEqual(["b", "a"]);
});
