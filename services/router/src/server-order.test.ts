import { nearestFirst } from "./server-order.ts";

const row = (name: string, proximity: number, rttMs?: number, isSelf = false) => ({ name, proximity, rttMs, isSelf });
const names = (rows: Array<{ name: string }>) => rows.map((r) => r.name);

test("this cluster first, then by measured round trip, even against the configured order", () => {
  expect(names(nearestFirst([row("b", 10, 95), row("c", 20, 4), row("a", 0, undefined, true)]))).toEqual(["a", "c", "b"]);
  expect(names(nearestFirst([row("b", 10, 30), row("c", 20, 4)]))).toEqual(["c", "b"]);
});

test("round trips within 25 ms of the nearest one count as the same distance: the configured order decides", () => {
  expect(names(nearestFirst([row("c", 20, 3), row("b", 10, 27)]))).toEqual(["b", "c"]);
  // Not fixed bands: 19 and 21 ms are as close as 1 and 3.
  expect(names(nearestFirst([row("c", 20, 19), row("b", 10, 21)]))).toEqual(["b", "c"]);
  expect(names(nearestFirst([row("c", 20, 3), row("b", 10, 28)]))).toEqual(["c", "b"]);
});

test("far away, a quarter of the round trip is the margin", () => {
  expect(names(nearestFirst([row("c", 20, 200), row("b", 10, 249)]))).toEqual(["b", "c"]);
  expect(names(nearestFirst([row("c", 20, 200), row("b", 10, 250)]))).toEqual(["c", "b"]);
});

test("groups start from their nearest member: a chain of close round trips is not one group", () => {
  // 5, 20 and 31 ms: 5 and 20 tie (config order z, y); 31 is not within 25 ms of 5: the next group.
  expect(names(nearestFirst([row("y", 20, 5), row("z", 10, 20), row("x", 5, 31)]))).toEqual(["z", "y", "x"]);
});

test("servers never measured come after the measured ones, in configured order, then by name", () => {
  expect(names(nearestFirst([row("z", 10), row("y", 30, 900), row("x", 20), row("w", 10)]))).toEqual(["y", "w", "z", "x"]);
});

test("the input is not changed", () => {
  const rows = [row("b", 20, 50), row("a", 10, 5)];
  nearestFirst(rows);
  expect(names(rows)).toEqual(["b", "a"]);
});
