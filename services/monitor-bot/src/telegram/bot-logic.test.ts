import { ADMIN_MAX_FAILURES, cleanEmail, cleanName, decide, helpText, menuCommands, newMember, parseInput, type Member } from "./bot-logic.ts";

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

describe("silences", () => {
  const admin = () => member({ isAdmin: true, name: "Ani" });
  test("/mute, /unmute and /ack are for admins only", () => {
    for (const c of ["/mute host:web1 30m", "/unmute host:web1", "/ack host:web1"]) {
      const d = decide(7, member(), cmd(c), ctx);
      expect(d.replies[0]).toMatch(/^Sorry, \/\w+ is for admins only/);
      expect(d.query).toBeUndefined();
    }
  });
  test("an admin's /mute names the component, the duration and who", () => {
    expect(decide(7, admin(), cmd("/mute host:web1 30m"), ctx)).toEqual({ replies: [], query: { kind: "mute", component: "host:web1", durationMs: 1_800_000, by: "Ani" } });
    expect(decide(7, admin(), cmd("/mute service:web1/* 2h"), ctx).query).toMatchObject({ component: "service:web1/*", durationMs: 7_200_000 });
    expect(decide(7, admin(), cmd("/ack http:web@10.0.0.5:80"), ctx).query).toEqual({ kind: "ack", component: "http:web@10.0.0.5:80", by: "Ani" });
    expect(decide(7, admin(), cmd("/unmute host:web1"), ctx).query).toEqual({ kind: "unmute", component: "host:web1", by: "Ani" });
  });
  test("bad arguments get a clear answer and no query", () => {
    const replies = (c: string) => {
      const d = decide(7, admin(), cmd(c), ctx);
      expect(d.query).toBeUndefined();
      return d.replies[0];
    };
    expect(replies("/mute")).toBe("Usage: /mute <component> <duration>, e.g. /mute host:web1 30m. Send /status for the component ids.");
    expect(replies("/mute host:web1")).toMatch(/^Usage: \/mute/);
    expect(replies("/ack")).toBe("Usage: /ack <component>, e.g. /ack host:web1. Send /status for the component ids.");
    expect(replies("/mute host:web1 30")).toBe('"30" is not a duration: give a number and a unit, e.g. 30m, 2h or 1d.');
    expect(replies("/mute host:web1 soon")).toMatch(/is not a duration/);
    expect(replies("/mute host:web1 10s")).toBe("A mute lasts from 1m to 30d; 10s is outside that.");
    expect(replies("/mute host:web1 31d")).toMatch(/^A mute lasts from 1m to 30d/);
  });
  test("menuCommands: every command with a short description", () => {
    const menu = menuCommands();
    expect(menu.map((c) => c.command)).toEqual(["start", "help", "status", "admin", "stop", "cpu", "ram", "system", "mute", "unmute", "ack"]);
    expect(menu.find((c) => c.command === "mute")!.description).toBe("<component> <duration>: no alerts about it for a while (30m, 2h, 1d)");
    expect(menu.find((c) => c.command === "status")!.description).toBe("every component, UP or DOWN, since when");
    for (const c of menu) expect(c.description.length).toBeGreaterThan(0);
  });
});
