import { IN_STREAM, inStreamOf, inStreams } from "./wire.ts";

test("the in stream's shards: `in` alone for 1, else in:0 ... in:n-1", () => {
  expect(inStreams(1)).toEqual([IN_STREAM]);
  expect(inStreams(3)).toEqual(["in:0", "in:1", "in:2"]);
  expect(() => inStreams(0)).toThrow(/positive integer/);
  expect(() => inStreams(1.5)).toThrow(/positive integer/);
});

test("a gateway's shard is fixed by its id, and ids spread over the shards", () => {
  expect(inStreamOf("gw-1", 1)).toBe("in");
  expect(inStreamOf("gw-1", 8)).toBe(inStreamOf("gw-1", 8));
  const used = new Set(Array.from({ length: 64 }, (_, i) => inStreamOf(`gw-${i}`, 4)));
  expect([...used].sort()).toEqual(["in:0", "in:1", "in:2", "in:3"]);
});
