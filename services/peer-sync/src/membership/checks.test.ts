import { checkInvite, nameTaken, type InviteRow } from "./checks.ts";

const now = new Date("2030-01-01T12:00:00Z");
const row: InviteRow = { id: "x".repeat(22), name: "c", mac_key: "k", expires_at: new Date("2030-01-01T13:00:00Z"), used_at: null };
const K = "k".repeat(43);

test("an unused, unexpired invite admits the name it was issued for", () => {
  expect(checkInvite(row, "c", K, undefined, now)).toEqual({ ok: true, again: false });
});

test("another name, a used invite and an expired one are refused, each saying why", () => {
  expect(checkInvite(row, "d", K, undefined, now)).toMatchObject({ ok: false, status: 403, reason: "invite_name" });
  expect(checkInvite({ ...row, used_at: now }, "c", K, undefined, now)).toMatchObject({ ok: false, reason: "invite_used" });
  expect(checkInvite({ ...row, expires_at: now }, "c", K, undefined, now)).toMatchObject({ ok: false, reason: "invite_expired" });
  expect(checkInvite({ ...row, expires_at: new Date(now.getTime() - 1) }, "c", K, undefined, now)).toMatchObject({ ok: false, reason: "invite_expired" });
});

test("a used invite is answered again for the newcomer it admitted (same invite, same key: its answer was lost), even once expired; not for another key", () => {
  const used = { ...row, used_at: now };
  const member = { inviteId: row.id, publicKey: K };
  expect(checkInvite(used, "c", K, member, now)).toEqual({ ok: true, again: true });
  expect(checkInvite({ ...used, expires_at: now }, "c", K, member, now)).toEqual({ ok: true, again: true });
  expect(checkInvite(used, "c", "j".repeat(43), member, now)).toMatchObject({ ok: false, reason: "invite_used" });
  // c a member by another invite (this one used by a c since revoked): reused.
  expect(checkInvite(used, "c", K, { inviteId: "y".repeat(22), publicKey: K }, now)).toMatchObject({ ok: false, reason: "invite_used" });
});

test("a newcomer may not take this cluster's name, a PEERS peer's or an active member's", () => {
  const o = { self: "a", staticPeers: new Set(["b"]), activeMembers: new Set(["c"]) };
  expect(nameTaken("a", o)).toMatch(/own name/);
  expect(nameTaken("b", o)).toMatch(/PEERS/);
  expect(nameTaken("c", o)).toMatch(/revoke it first/);
  expect(nameTaken("d", o)).toBeUndefined();
});
