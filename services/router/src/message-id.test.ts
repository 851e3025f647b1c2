import { isValidMessageId } from "@pesan/shared/protocol";
import { messageId } from "./router.ts";

test("message ids are valid protocol ids, deterministic, and sort in stream order", () => {
  const a = messageId("cluster-1234567", "1763900000000-0", 0);
  expect(isValidMessageId(a)).toBe(true);
  expect(messageId("cluster-1234567", "1763900000000-0", 0)).toBe(a);
  const longest = messageId("abcdefghijklmnop", "9999999999999-99999", 4095);
  expect(isValidMessageId(longest)).toBe(true);
  const ids = [
    messageId("c", "1763900000000-0", 0),
    messageId("c", "1763900000000-0", 9),
    messageId("c", "1763900000000-0", 10),
    messageId("c", "1763900000000-2", 0),
    messageId("c", "1763900000001-0", 0),
  ];
  expect([...ids].sort()).toEqual(ids);
  expect(new Set(ids).size).toBe(ids.length);
});

test("with shards, the same entry id on two shards makes two ids, still valid at the longest", () => {
  const ids = [0, 1, 1023].map((shard) => messageId("c", "1763900000000-0", 0, shard));
  expect(new Set([...ids, messageId("c", "1763900000000-0", 0)]).size).toBe(4);
  expect(isValidMessageId(messageId("abcdefghijklmnop", "9999999999999-99999", 4095, 1023))).toBe(true);
});
