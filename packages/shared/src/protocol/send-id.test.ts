import { createHash } from "node:crypto";
import { isSameSend, isSessionSendId, isValidMessageId, sessionSendId } from "./index.ts";

test("a tagged SEND's id is a valid protocol id, the same for the same session, tag and generation, and differs otherwise", () => {
  const token = "k3Jx9f2Qa8Lm0PzT";
  const id = sessionSendId(token, "u17", 0);
  expect(id).toMatch(/^t\.[A-Za-z0-9_-]{38}$/);
  expect(id).toHaveLength(40);
  expect(isValidMessageId(id)).toBe(true);
  expect(isSessionSendId(id)).toBe(true);
  expect(sessionSendId(token, "u17", 0)).toBe(id);
  const others = [sessionSendId(token, "u18", 0), sessionSendId(token, "u17", 1), sessionSendId(`${token}x`, "u17", 0), sessionSendId(token, "u1", 70)];
  expect(new Set([id, ...others]).size).toBe(5);
});

test("the id shows nothing of the token: neither it nor a plain hash of it appears", () => {
  const token = "secret-token-abcdef";
  const id = sessionSendId(token, "a", 0);
  expect(id).not.toContain(token);
  expect(id.slice(2)).not.toBe(createHash("sha256").update(token).digest("base64url").slice(0, 38));
});

test("ids a cluster makes from its stream, and other strings, are not tagged-SEND ids", () => {
  for (const s of ["a:lq2x-000-000", "t:lq2x-000-000", "t.", `t.${"A".repeat(37)}`, `t.${"A".repeat(39)}`, `t.${"A".repeat(37)}:`, `T.${"A".repeat(38)}`]) expect(isSessionSendId(s)).toBe(false);
});

test("the same send is the same sender, recipient and text; any one of them differing is another", () => {
  const m = { sender: "alice", recipient: "bob", body: "hi there" };
  expect(isSameSend(m, { ...m })).toBe(true);
  expect(isSameSend(m, { ...m, sender: "mallory" })).toBe(false);
  expect(isSameSend(m, { ...m, recipient: "carol" })).toBe(false);
  expect(isSameSend(m, { ...m, body: "hi there!" })).toBe(false);
});
