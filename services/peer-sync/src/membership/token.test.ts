import { decodeInvite, encodeInvite, inviteMacKey, newInvite, parseTtl, TOKEN_PREFIX } from "./token.ts";

const base = { issuer: "a", syncUrl: "http://127.0.0.1:7101", name: "c", expiresAt: new Date("2030-01-01T00:00:00Z") };

test("a token decodes to the invite it was made from", () => {
  const inv = newInvite(base);
  const token = encodeInvite(inv);
  expect(token.startsWith(TOKEN_PREFIX)).toBe(true);
  expect(decodeInvite(token)).toEqual({ ok: true, invite: inv });
  expect(decodeInvite(`  ${token}\n`)).toEqual({ ok: true, invite: inv });
});

test("each invite has its own id and a 256-bit secret", () => {
  const x = newInvite(base);
  const y = newInvite(base);
  expect(x.id).not.toBe(y.id);
  expect(x.secret).not.toBe(y.secret);
  expect(Buffer.from(x.secret, "base64url")).toHaveLength(32);
});

test("what is not a token is named as such, without quoting it", () => {
  expect(decodeInvite("hello")).toEqual({ ok: false, error: expect.stringMatching(/not an invite token/) });
  const damaged = decodeInvite(`${TOKEN_PREFIX}!!!`);
  expect(damaged.ok).toBe(false);
  const wrongShape = decodeInvite(TOKEN_PREFIX + Buffer.from(JSON.stringify({ ...newInvite(base), name: "not a name" })).toString("base64url"));
  expect(wrongShape).toEqual({ ok: false, error: expect.stringMatching(/damaged \(name\)/) });
});

test("the MAC key depends on the secret, the invite id and the name it was issued for", () => {
  const inv = newInvite(base);
  const k = inviteMacKey(inv);
  expect(k).toMatch(/^[0-9a-f]{64}$/);
  expect(k).not.toContain(inv.secret);
  expect(inviteMacKey({ ...inv, name: "d" })).not.toBe(k);
  expect(inviteMacKey({ ...inv, id: newInvite(base).id })).not.toBe(k);
  expect(inviteMacKey({ ...inv, secret: newInvite(base).secret })).not.toBe(k);
});

test("--ttl takes seconds, minutes, hours and days, up to 30 days", () => {
  expect(parseTtl("90s")).toBe(90_000);
  expect(parseTtl("30m")).toBe(1_800_000);
  expect(parseTtl("1h")).toBe(3_600_000);
  expect(parseTtl("2d")).toBe(172_800_000);
  expect(parseTtl("31d")).toBeUndefined();
  expect(parseTtl("0s")).toBeUndefined();
  expect(parseTtl("1 hour")).toBeUndefined();
  expect(parseTtl("-1h")).toBeUndefined();
});
