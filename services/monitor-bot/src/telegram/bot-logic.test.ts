import { ADMIN_MAX_FAILURES, cleanEmail, cleanName, decide, helpText, newMember, parseInput, type Member } from "./bot-logic.ts";

const NOW = new Date("2026-11-25T12:00:00.000Z");
const ctx = { now: NOW, adminCode: "s3cret-admin-code" };
const cmd = (text: string) => parseInput(text, "pesan_bot");
const member = (over: Partial<Member> = {}): Member => ({ ...newMember(7, ctx), stage: "member", name: "Ani", email: "ani@example.com", ...over });

describe("parseInput", () => {
  test.each([
    ["/start", { kind: "command", name: "start", args: "" }],
    ["/CPU web1", { kind: "command", name: "cpu", args: "web1" }],
    ["/ram@pesan_bot  web2 ", { kind: "command", name: "ram", args: "web2" }],
    ["  /status  ", { kind: "command", name: "status", args: "" }],
    ["/admin my code here", { kind: "command", name: "admin", args: "my code here" }],
    ["/ram@other_bot web1", { kind: "text", text: "/ram@other_bot web1" }],
    ["hello /start", { kind: "text", text: "hello /start" }],
    [" Ani ", { kind: "text", text: "Ani" }],
  ])("%j", (text, expected) => expect(cmd(text)).toEqual(expected));
});

describe("names and emails", () => {
  test.each([
    ["  Ani   Wulandari ", "Ani Wulandari"],
    ["Dr. Budi", "Dr. Budi"],
    ["Ngô Bảo Châu", "Ngô Bảo Châu"],
    ["", undefined],
    ["12345", undefined],
    ["x".repeat(65), undefined],
    ["bad\u0007name", undefined],
  ])("name %j -> %j", (input, out) => expect(cleanName(input)).toBe(out));

  test.each([
    ["ani@example.com", "ani@example.com"],
    [" Ani.W+ops@Mail.Example.CO.ID ", "Ani.W+ops@mail.example.co.id"],
    ["ani@example", undefined],
    ["ani@@example.com", undefined],
    ["ani example.com", undefined],
    ["ani@1.2.3.4", undefined],
    [".ani@example.com", undefined],
    ["a..b@example.com", undefined],
    ["ani@-example.com", undefined],
    [`${"a".repeat(65)}@example.com`, undefined],
  ])("email %j -> %j", (input, out) => expect(cleanEmail(input)).toBe(out));
});

describe("registration: /start, name, email", () => {
  test("an unknown chat is refused politely, except /start", () => {
    for (const t of ["/ram", "/status", "/help", "hello"]) {
      const d = decide(7, undefined, cmd(t), ctx);
      expect(d.replies).toEqual([expect.stringMatching(/^Sorry, this bot only answers registered members.*\/start/)]);
      expect(d.member).toBeUndefined();
    }
  });

  test("the whole conversation, an invalid email rejected on the way", () => {
    const d1 = decide(7, undefined, cmd("/start"), { ...ctx, username: "ani_w" });
    expect(d1.replies[1]).toBe("What is your name?");
    expect(d1.member).toMatchObject({ chatId: 7, stage: "name", username: "ani_w", isAdmin: false });
    const d2 = decide(7, d1.member!, cmd("/status"), ctx);
    expect(d2.replies).toEqual(["Please finish registering first. What is your name?"]);
    const d3 = decide(7, d1.member!, cmd("Ani"), ctx);
    expect(d3.replies).toEqual(["Thanks, Ani. What is your email address?"]);
    expect(d3.member).toMatchObject({ stage: "email", name: "Ani" });
    const d4 = decide(7, d3.member!, cmd("ani at example"), ctx);
    expect(d4.replies[0]).toMatch(/does not look like an email address/);
    expect(d4.member).toBeUndefined();
    const d5 = decide(7, d3.member!, cmd("ani@example.com"), ctx);
    expect(d5.member).toMatchObject({ stage: "member", name: "Ani", email: "ani@example.com" });
    expect(d5.replies[0]).toMatch(/^You are registered, Ani\./);
  });

  test("/start again: asks the pending question, or says who you are; never a new member", () => {
    expect(decide(7, { ...newMember(7, ctx) }, cmd("/start"), ctx)).toEqual({ replies: ["What is your name?"] });
    expect(decide(7, member({ stage: "email" }), cmd("/start"), ctx)).toEqual({ replies: ["What is your email address?"] });
    expect(decide(7, member({ isAdmin: true }), cmd("/start"), ctx)).toEqual({ replies: ["You are already registered as Ani <ani@example.com> (admin). Send /help for the commands."] });
  });

  test("a bad name is asked again", () => {
    expect(decide(7, newMember(7, ctx), cmd("1234"), ctx).replies[0]).toMatch(/^Please send your name/);
  });
});

describe("permissions", () => {
  test("members: /status and /help; not /ram, /cpu, /system", () => {
    expect(decide(7, member(), cmd("/status"), ctx).query).toEqual({ kind: "status" });
    expect(decide(7, member(), cmd("/help"), ctx).query).toEqual({ kind: "help", admin: false });
    for (const c of ["ram", "cpu", "system"]) {
      const d = decide(7, member(), cmd(`/${c} web1`), ctx);
      expect(d.query).toBeUndefined();
      expect(d.replies[0]).toMatch(new RegExp(`^Sorry, /${c} is for admins only`));
    }
  });

  test("admins: a target or all of them", () => {
    expect(decide(7, member({ isAdmin: true }), cmd("/cpu web1"), ctx).query).toEqual({ kind: "cpu", target: "web1" });
    expect(decide(7, member({ isAdmin: true }), cmd("/system"), ctx).query).toEqual({ kind: "system", target: undefined });
  });

  test("/admin with the right code makes an admin; wrong codes lock it for a while", () => {
    const ok = decide(7, member({ adminFailures: 2 }), cmd("/admin s3cret-admin-code"), ctx);
    expect(ok.member).toMatchObject({ isAdmin: true, adminFailures: 0 });
    let m = member();
    for (let i = 1; i < ADMIN_MAX_FAILURES; i++) {
      const d = decide(7, m, cmd("/admin guess"), ctx);
      expect(d.replies).toEqual(["Wrong admin code."]);
      m = d.member!;
      expect(m.adminFailures).toBe(i);
    }
    const locked = decide(7, m, cmd("/admin guess"), ctx);
    expect(locked.member!.adminLockedUntil!.getTime()).toBe(NOW.getTime() + 15 * 60_000);
    // Even the right code waits out the lock.
    expect(decide(7, locked.member!, cmd("/admin s3cret-admin-code"), ctx).replies).toEqual(["Too many wrong codes. Try again later."]);
    const later = { ...ctx, now: new Date(NOW.getTime() + 16 * 60_000) };
    expect(decide(7, locked.member!, cmd("/admin s3cret-admin-code"), later).member).toMatchObject({ isAdmin: true });
  });

  test("/stop deletes; unknown commands and free text are explained", () => {
    expect(decide(7, member(), cmd("/stop"), ctx).member).toBeNull();
    expect(decide(7, member(), cmd("/reboot"), ctx).replies).toEqual(["Unknown command /reboot. Send /help for the list."]);
    expect(decide(7, member(), cmd("hi"), ctx).replies).toEqual(["I only understand commands. Send /help for the list."]);
  });

  test("/help lists what the member may use", () => {
    expect(helpText(false)).not.toMatch(/\/cpu/);
    expect(helpText(false)).toMatch(/\/admin <code>/);
    expect(helpText(true)).toMatch(/\/cpu \[server\]/);
    expect(helpText(true)).not.toMatch(/\/admin/);
  });
});
