import { inIdSpace } from "./ownership.ts";

test("an id is in the space of the cluster named before its first colon, and of no other", () => {
  expect(inIdSpace("a:lq2x-000-000", "a")).toBe(true);
  expect(inIdSpace("ab:lq2x-000-000", "a")).toBe(false);
  expect(inIdSpace("a:lq2x-000-000", "ab")).toBe(false);
  expect(inIdSpace("a", "a")).toBe(false);
  expect(inIdSpace("race-1", "a")).toBe(false);
});
