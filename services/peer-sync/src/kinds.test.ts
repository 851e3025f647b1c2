import { FRAME_KINDS } from "./frames.ts";
import { compareBindings, compareRegistrations, sessionDown, sessionSnapshot, sessionUp, userRegister, userUnregister } from "./kinds.ts";

const t = (s: string) => new Date(s);

test("the earlier registration wins; at the same instant the smaller home cluster name", () => {
  const a = { createdAt: t("2024-01-01T00:00:00.001Z"), home: "b" };
  const b = { createdAt: t("2024-01-01T00:00:00.002Z"), home: "a" };
  expect(compareRegistrations(a, b)).toBeLessThan(0);
  expect(compareRegistrations(b, a)).toBeGreaterThan(0);
  const tieA = { createdAt: t("2024-01-01T00:00:00.005Z"), home: "a" };
  const tieB = { createdAt: t("2024-01-01T00:00:00.005Z"), home: "b" };
  expect(compareRegistrations(tieA, tieB)).toBeLessThan(0);
  expect(compareRegistrations(tieB, tieA)).toBeGreaterThan(0);
  expect(compareRegistrations(tieA, { ...tieA })).toBe(0);
  // Both sides of a race compute the same owner, whichever one they hold.
  for (const [x, y] of [[a, b], [tieA, tieB]] as const) {
    const winnerSeenByX = compareRegistrations(y, x) < 0 ? y : x;
    const winnerSeenByY = compareRegistrations(x, y) < 0 ? x : y;
    expect(winnerSeenByX).toBe(winnerSeenByY);
  }
});

test("the later binding of a session wins; at the same instant the larger cluster name", () => {
  expect(compareBindings({ at: t("2024-01-01T00:00:01Z"), cluster: "a" }, { at: t("2024-01-01T00:00:00Z"), cluster: "z" })).toBeGreaterThan(0);
  expect(compareBindings({ at: t("2024-01-01T00:00:00Z"), cluster: "b" }, { at: t("2024-01-01T00:00:00Z"), cluster: "a" })).toBeGreaterThan(0);
  expect(compareBindings({ at: t("2024-01-01T00:00:00Z"), cluster: "a" }, { at: t("2024-01-01T00:00:00Z"), cluster: "a" })).toBe(0);
});

test("the user, session, message and membership frame kinds are registered with their schemas", () => {
  expect(Object.keys(FRAME_KINDS).sort()).toEqual(["broadcast", "member.join", "member.revoke", "message.new", "message.state", "session.down", "session.snapshot", "session.up", "user.register", "user.unregister"]);
});

test("frame schemas accept what the routers write and refuse bad shapes", () => {
  const at = new Date().toISOString();
  // The hash's parameters are judged by the handler (ignored, not refusing the batch: peer-ownership.test.ts).
  expect(userRegister.safeParse({ name: "alice", passHash: "scrypt$x", createdAt: at, home: "a" }).success).toBe(true);
  expect(userRegister.safeParse({ name: "al ice", passHash: "x", createdAt: at, home: "a" }).success).toBe(false);
  expect(userRegister.safeParse({ name: "alice", passHash: "x", createdAt: "yesterday", home: "a" }).success).toBe(false);
  expect(userRegister.safeParse({ name: "alice", passHash: "x", createdAt: at }).success).toBe(false);
  expect(userUnregister.safeParse({ name: "alice", createdAt: at, at }).success).toBe(true);
  expect(userUnregister.safeParse({ name: "alice", at }).success).toBe(false);
  expect(sessionUp.safeParse({ user: "alice", token: "tok", cluster: "a", capAck: false, at }).success).toBe(true);
  expect(sessionUp.safeParse({ user: "alice", token: "", cluster: "a", capAck: false, at }).success).toBe(false);
  expect(sessionUp.safeParse({ user: "alice", token: "tok", cluster: "a b", capAck: false, at }).success).toBe(false);
  expect(sessionUp.safeParse({ user: "alice", token: "tok", cluster: "a", capAck: "yes", at }).success).toBe(false);
  for (const reason of ["logout", "expired", "unregistered", "replaced"]) {
    expect(sessionDown.safeParse({ user: "alice", token: "tok", cluster: "a", reason, at }).success).toBe(true);
  }
  expect(sessionDown.safeParse({ user: "alice", token: "tok", cluster: "a", reason: "bored", at }).success).toBe(false);
  expect(sessionSnapshot.safeParse({ cluster: "a", sessions: [] }).success).toBe(true);
  expect(sessionSnapshot.safeParse({ cluster: "a", sessions: [{ user: "alice", token: "t", capAck: true, at }] }).success).toBe(true);
  expect(sessionSnapshot.safeParse({ cluster: "a", sessions: [{ user: "alice", capAck: true, at }] }).success).toBe(false);
});
