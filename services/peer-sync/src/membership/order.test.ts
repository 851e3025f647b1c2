import { judgeJoin, revokeEnds } from "./order.ts";

const K = "k".repeat(43);
const K2 = "j".repeat(43);
const X = "x".repeat(22);
const Y = "y".repeat(22);

test("a join naming a revoked membership is ignored, whatever is active", () => {
  expect(judgeJoin(undefined, { invite: X, publicKey: K }, new Set([X]))).toBe("revoked");
  expect(judgeJoin({ inviteId: Y, publicKey: K }, { invite: X, publicKey: K }, new Set([X]))).toBe("revoked");
});

test("a join with no active membership is recorded; the same one again is nothing", () => {
  expect(judgeJoin(undefined, { invite: Y, publicKey: K }, new Set([X]))).toBe("record");
  expect(judgeJoin({ inviteId: Y, publicKey: K }, { invite: Y, publicKey: K }, new Set())).toBe("same");
  // The same invite with another key is a lie (or a mix-up): the member we know stays.
  expect(judgeJoin({ inviteId: Y, publicKey: K }, { invite: Y, publicKey: K2 }, new Set())).toBe("conflict");
});

test("a new invite's join supersedes a membership it says was revoked (its revoke not delivered yet), or one we know no invite of", () => {
  expect(judgeJoin({ inviteId: X, publicKey: K }, { invite: Y, publicKey: K }, new Set([X]))).toBe("record");
  expect(judgeJoin({ inviteId: null, publicKey: K }, { invite: Y, publicKey: K2 }, new Set())).toBe("record");
});

test("an older join after a newer one (neither revoked as far as we know) leaves the newer one", () => {
  expect(judgeJoin({ inviteId: Y, publicKey: K }, { invite: X, publicKey: K }, new Set())).toBe("conflict");
});

test("a revoke ends the membership it names, an unknown one, or any when it names none; never a newer one", () => {
  expect(revokeEnds(undefined, X)).toBe(false);
  expect(revokeEnds({ inviteId: X, publicKey: K }, X)).toBe(true);
  expect(revokeEnds({ inviteId: null, publicKey: K }, X)).toBe(true);
  expect(revokeEnds({ inviteId: Y, publicKey: K }, undefined)).toBe(true);
  expect(revokeEnds({ inviteId: Y, publicKey: K }, X)).toBe(false);
});
