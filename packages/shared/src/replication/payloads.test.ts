import { FRAME_PAYLOADS, sessionDown, sessionDownPayload } from "./payloads.ts";

test("every frame kind has a payload schema", () => {
  expect(Object.keys(FRAME_PAYLOADS).sort()).toEqual(["broadcast", "member.join", "member.revoke", "message.new", "message.state", "session.down", "session.snapshot", "session.up", "user.register", "user.unregister"]);
});

test("sessionDownPayload writes the wire format, keys in order, and its own schema accepts it", () => {
  const p = sessionDownPayload({ user: "ann", token: "t1" }, "east", "expired", new Date("2026-01-02T03:04:05.000Z"));
  expect(JSON.stringify(p)).toBe('{"user":"ann","token":"t1","cluster":"east","reason":"expired","at":"2026-01-02T03:04:05.000Z"}');
  expect(sessionDown.safeParse(p).success).toBe(true);
});
