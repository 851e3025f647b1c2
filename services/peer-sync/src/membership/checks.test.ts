import { checkInvite, nameTaken, type InviteRow } from "./checks.ts";

const now = new Date("2030-01-01T12:00:00Z");
const row: InviteRow = { id: "x".repeat(22), name: "c", mac_key: "k", expires_at: new Date("2030-01-01T13:00:00Z"), used_at: null };

test("an unused, unexpired invite admits the name it was issued for", () => {
  expect(checkInvite(row, "c", now)).toEqual({ ok: true });
});

test("another name, a used invite and an expired one are refused, each saying why", () => {
  expect(checkInvite(row, "d", now)).toMatchObject({ ok: false, status: 403, reason: "invite_name" });
  expect(checkInvite({ ...row, used_at: now }, "c", now)).toMatchObject({ ok: false, reason: "invite_used" });
  expect(checkInvite({ ...row, expires_at: now }, "c", now)).toMatchObject({ ok: false, reason: "invite_expired" });
  expect(checkInvite({ ...row, expires_at: new Date(now.getTime() - 1) }, "c", now)).toMatchObject({ ok: false, reason: "invite_expired" });
});

test("a newcomer may not take this cluster's name, a PEERS peer's or an active member's", () => {
  const o = { self: "a", staticPeers: new Set(["b"]), activeMembers: new Set(["c"]) };
  expect(nameTaken("a", o)).toMatch(/own name/);
  expect(nameTaken("b", o)).toMatch(/PEERS/);
  expect(nameTaken("c", o)).toMatch(/revoke it first/);
  expect(nameTaken("d", o)).toBeUndefined();
});
