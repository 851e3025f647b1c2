import {
  HEARTBEAT,
  HEARTBEAT_REPLY,
  INBOX_PREVIEW_CHARS,
  MAX_DATAGRAM_BYTES,
  MAX_TEXT_BYTES,
  byteLength,
  encode,
  formatErr,
  formatItem,
  formatMsg,
  formatOk,
  formatOnline,
  formatServer,
  formatTime,
  frame,
  isValidMessageId,
  isValidUser,
  parseDatagram,
  parseServerLine,
  parseText,
  preview,
  unframe,
  withTag,
  type Parsed,
  type Request,
} from "./codec.ts";
import { PROTOCOL_ERRORS, type ProtocolErrorCode } from "../errors.ts";

const dg = (s: string): Parsed => parseDatagram(Buffer.from(s, "utf8"));

function expectReq(p: Parsed, req: Request, tag?: string): void {
  expect(p).toEqual({ ok: true, tag, req });
}

function expectErr(p: Parsed, code: ProtocolErrorCode, message?: string | RegExp, tag?: string): void {
  expect(p.ok).toBe(false);
  if (p.ok) return;
  expect(p.code).toBe(code);
  expect(p.tag).toBe(tag);
  if (typeof message === "string") expect(p.message).toBe(message);
  else if (message) expect(p.message).toMatch(message);
}

describe("parseDatagram: commands", () => {
  const cases: Array<[string, Request]> = [
    ["REGISTER alice secret1", { cmd: "REGISTER", user: "alice", password: "secret1" }],
    ["LOGIN alice secret1", { cmd: "LOGIN", user: "alice", password: "secret1" }],
    ["RESUME alice tok_EN-123", { cmd: "RESUME", user: "alice", token: "tok_EN-123" }],
    ["WHO", { cmd: "WHO" }],
    ["SEND bob hello there", { cmd: "SEND", to: "bob", text: "hello there" }],
    ["ALL hi everyone", { cmd: "ALL", text: "hi everyone" }],
    ["INBOX", { cmd: "INBOX" }],
    ["READ 1700000000000-0", { cmd: "READ", id: "1700000000000-0" }],
    ["DELETE c1:abc.DEF_9-x", { cmd: "DELETE", id: "c1:abc.DEF_9-x" }],
    ["ACK m42", { cmd: "ACK", id: "m42" }],
    ["CAP ACK", { cmd: "CAP", cap: "ACK" }],
    ["SERVERS", { cmd: "SERVERS" }],
    ["LOGOUT", { cmd: "LOGOUT" }],
    ["UNREGISTER secret1", { cmd: "UNREGISTER", password: "secret1" }],
    [HEARTBEAT, { cmd: "LIVE" }],
  ];

  test.each(cases)("%j parses", (line, req) => {
    expectReq(dg(line), req);
  });

  test.each(cases.filter(([l]) => l !== HEARTBEAT))("%j: word is case-insensitive and may start with /", (line, req) => {
    const sp = line.indexOf(" ");
    const word = sp < 0 ? line : line.slice(0, sp);
    const rest = sp < 0 ? "" : line.slice(sp);
    const mixed = [...word].map((c, i) => (i % 2 ? c.toLowerCase() : c.toUpperCase())).join("");
    for (const w of [word.toLowerCase(), mixed, `/${word.toLowerCase()}`, `/${word}`, `/${mixed}`]) {
      expectReq(dg(w + rest), req);
    }
  });

  test.each(cases)("%j: a tag is carried through", (line, req) => {
    expectReq(dg(`@t1 ${line}`), req, "t1");
    expectReq(dg(`@${"Ab_-9".repeat(6)}ab ${line}`), req, `${"Ab_-9".repeat(6)}ab`);
  });

  test.each(cases)("%j: one trailing \\n or \\r\\n is stripped", (line, req) => {
    expectReq(dg(`${line}\n`), req);
    expectReq(dg(`${line}\r\n`), req);
    expectReq(dg(`@x ${line}\r\n`), req, "x");
  });

  test("argument values keep their case", () => {
    expectReq(dg("login Alice PassWORD"), { cmd: "LOGIN", user: "Alice", password: "PassWORD" });
    expectReq(dg("/send Bob MiXeD Text"), { cmd: "SEND", to: "Bob", text: "MiXeD Text" });
  });

  test("CAP's argument is case-insensitive too", () => {
    expectReq(dg("cap ack"), { cmd: "CAP", cap: "ACK" });
    expectReq(dg("/Cap Ack\n"), { cmd: "CAP", cap: "ACK" });
  });

  test("only one trailing newline is stripped; the rest is content", () => {
    expectReq(dg("SEND bob hi\n\n"), { cmd: "SEND", to: "bob", text: "hi\n" });
    expectReq(dg("SEND bob hi\r\n\r\n"), { cmd: "SEND", to: "bob", text: "hi\r\n" });
    expectReq(dg("SEND bob hi\n\r\n"), { cmd: "SEND", to: "bob", text: "hi\n" });
    expectReq(dg("ALL hi\r"), { cmd: "ALL", text: "hi\r" });
    // WHO followed by a second newline is no longer the word WHO
    expectErr(dg("WHO\n\n"), "UNKNOWN_COMMAND", "WHO?");
  });

  test("SEND and ALL text keeps newlines, spaces and unicode verbatim", () => {
    const text = "line one\nline two\r\n  indented\ttab  trailing  😀 émoji";
    expectReq(dg(`SEND bob ${text}`), { cmd: "SEND", to: "bob", text });
    expectReq(dg(`SEND bob ${text}\n`), { cmd: "SEND", to: "bob", text });
    expectReq(dg(`ALL ${text}\r\n`), { cmd: "ALL", text });
    expectReq(dg("SEND bob  leading space"), { cmd: "SEND", to: "bob", text: " leading space" });
  });

  test("passwords may contain spaces and are kept verbatim", () => {
    expectReq(dg("REGISTER alice my pass phrase"), { cmd: "REGISTER", user: "alice", password: "my pass phrase" });
    expectReq(dg("LOGIN alice my pass phrase\n"), { cmd: "LOGIN", user: "alice", password: "my pass phrase" });
    expectReq(dg("UNREGISTER  two  spaces "), { cmd: "UNREGISTER", password: " two  spaces " });
  });

  test("heartbeat: exact /@live?, optionally tagged and newline-terminated", () => {
    expectReq(dg("/@live?"), { cmd: "LIVE" });
    expectReq(dg("/@live?\n"), { cmd: "LIVE" });
    expectReq(dg("/@live?\r\n"), { cmd: "LIVE" });
    expectReq(dg("@hb7 /@live?"), { cmd: "LIVE" }, "hb7");
    expectReq(dg("@hb7 /@live?\n"), { cmd: "LIVE" }, "hb7");
    expect(HEARTBEAT_REPLY).toBe("yes");
    // anything else is not the heartbeat
    expect(dg("/@live? ").ok).toBe(false);
    expect(dg("/@live").ok).toBe(false);
    expect(dg("/@LIVE?").ok).toBe(false);
  });

  test("parseText applies the same framing as parseDatagram", () => {
    expectReq(parseText("@a who\r\n"), { cmd: "WHO" }, "a");
    expectReq(parseText("SEND bob x\ny\n"), { cmd: "SEND", to: "bob", text: "x\ny" });
  });
});

describe("parseDatagram: framing errors", () => {
  test("empty datagram", () => {
    expectErr(parseDatagram(new Uint8Array(0)), "BAD_REQUEST", /empty/);
  });

  test("a datagram that is only a newline or only a tag is an empty request", () => {
    expectErr(dg("\n"), "BAD_REQUEST", /empty/);
    expectErr(dg("\r\n"), "BAD_REQUEST", /empty/);
    expectErr(dg("@t1 "), "BAD_REQUEST", /empty/, "t1");
    expectErr(dg("@t1 \n"), "BAD_REQUEST", /empty/, "t1");
  });

  test("oversize datagram: 8192 bytes is parsed, 8193 is refused", () => {
    const at = (n: number) => `UNREGISTER ${"x".repeat(n - "UNREGISTER ".length)}`;
    expect(Buffer.byteLength(at(MAX_DATAGRAM_BYTES))).toBe(8192);
    expectReq(dg(at(MAX_DATAGRAM_BYTES)), { cmd: "UNREGISTER", password: "x".repeat(8192 - 11) });
    expectErr(dg(at(MAX_DATAGRAM_BYTES + 1)), "BAD_REQUEST", /8192/);
    expectErr(parseDatagram(new Uint8Array(100_000).fill(0x41)), "BAD_REQUEST", /8192/);
    // the newline counts: it is part of the datagram
    expectErr(dg(`${at(MAX_DATAGRAM_BYTES)}\n`), "BAD_REQUEST", /8192/);
    // multi-byte characters count in bytes
    expectErr(dg(`ALL ${"é".repeat(4095)}`), "BAD_REQUEST", /8192/);
  });

  test("parseText refuses oversize text too (counted in UTF-8 bytes)", () => {
    expectErr(parseText(`ALL ${"é".repeat(4095)}`), "BAD_REQUEST", /8192/);
    expectErr(parseText(`ALL ${"x".repeat(8189)}`), "BAD_REQUEST", /8192/);
  });

  test.each([
    ["lone continuation byte", [0x80]],
    ["truncated 2-byte sequence", [0x57, 0x48, 0x4f, 0x20, 0xc3]],
    ["overlong encoding of /", [0xc0, 0xaf]],
    ["encoded surrogate U+D800", [0x41, 0x4c, 0x4c, 0x20, 0xed, 0xa0, 0x80]],
    ["code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["0xFF byte", [0x53, 0x45, 0x4e, 0x44, 0x20, 0x62, 0x20, 0xff]],
  ])("invalid UTF-8 (%s) is BAD_REQUEST", (_name, bytes) => {
    expectErr(parseDatagram(Uint8Array.from(bytes)), "BAD_REQUEST", /UTF-8/);
  });

  test("NUL byte anywhere is refused", () => {
    expectErr(dg("\0"), "BAD_REQUEST", /NUL/);
    expectErr(dg("SEND bob a\0b"), "BAD_REQUEST", /NUL/);
    expectErr(dg("WHO\0"), "BAD_REQUEST", /NUL/);
    expectErr(dg("WHO\0\n"), "BAD_REQUEST", /NUL/);
    expectErr(dg("@t1 WHO\0"), "BAD_REQUEST", /NUL/);
  });

  test.each([
    ["@ WHO"],
    ["@t1WHO"],
    ["@t1"],
    ["@t.1 WHO"],
    ["@t:1 WHO"],
    ["@t1\tWHO"],
    [`@${"a".repeat(33)} WHO`],
    ["@é WHO"],
    ["@@t WHO"],
  ])("bad tag %j is BAD_REQUEST without a tag", (line) => {
    expectErr(dg(line), "BAD_REQUEST", /tag/);
  });

  test("a 32-character tag is fine, 33 is not", () => {
    expectReq(dg(`@${"a".repeat(32)} WHO`), { cmd: "WHO" }, "a".repeat(32));
    expect(dg(`@${"a".repeat(33)} WHO`).ok).toBe(false);
  });

  test("an error after a valid tag carries the tag", () => {
    expectErr(dg("@q9 SEND bob"), "BAD_REQUEST", "usage: SEND <user> <text>", "q9");
    expectErr(dg("@q9 NOPE"), "UNKNOWN_COMMAND", "NOPE", "q9");
    expectErr(dg(`@q9 SEND bob ${"x".repeat(4001)}`), "TOO_LONG", PROTOCOL_ERRORS.TOO_LONG, "q9");
  });
});

describe("parseDatagram: argument errors", () => {
  test.each([
    ["REGISTER", "usage: REGISTER <user> <password>"],
    ["REGISTER alice", "usage: REGISTER <user> <password>"],
    ["REGISTER alice ", "usage: REGISTER <user> <password>"],
    ["REGISTER  alice secret1", "usage: REGISTER <user> <password>"],
    ["LOGIN", "usage: LOGIN <user> <password>"],
    ["LOGIN alice", "usage: LOGIN <user> <password>"],
    ["LOGIN alice ", "usage: LOGIN <user> <password>"],
    ["RESUME", "usage: RESUME <user> <token>"],
    ["RESUME alice", "usage: RESUME <user> <token>"],
    ["RESUME alice bad token", "usage: RESUME <user> <token>"],
    ["RESUME alice bad!token", "usage: RESUME <user> <token>"],
    [`RESUME alice ${"t".repeat(129)}`, "usage: RESUME <user> <token>"],
    ["SEND", "usage: SEND <user> <text>"],
    ["SEND bob", "usage: SEND <user> <text>"],
    ["SEND bob ", "usage: SEND <user> <text>"],
    ["SEND  bob hi", "usage: SEND <user> <text>"],
    ["ALL", "usage: ALL <text>"],
    ["ALL ", "usage: ALL <text>"],
    ["READ", "usage: READ <message id>"],
    ["DELETE", "usage: DELETE <message id>"],
    ["ACK", "usage: ACK <message id>"],
    ["UNREGISTER", "usage: UNREGISTER <password>"],
    ["UNREGISTER ", "usage: UNREGISTER <password>"],
    ["CAP", "usage: CAP ACK (the only capability)"],
  ])("%j -> BAD_REQUEST %j", (line, usage) => {
    expectErr(dg(line), "BAD_REQUEST", usage);
    expectErr(dg(`${line.toLowerCase()}\n`), "BAD_REQUEST", usage);
  });

  test("a 128-character token is accepted", () => {
    expectReq(dg(`RESUME alice ${"t".repeat(128)}`), { cmd: "RESUME", user: "alice", token: "t".repeat(128) });
  });

  test.each(["bad!name", "al ice", "é", "a".repeat(33), "a/b", "a@b", "a\tb"])("REGISTER with bad user name %j", (user) => {
    const p = dg(`REGISTER ${user} secret1`);
    if (user.includes(" ")) {
      // "al ice secret1": user "al", password "ice secret1" is syntactically fine
      expectReq(p, { cmd: "REGISTER", user: "al", password: "ice secret1" });
      return;
    }
    expectErr(p, "BAD_REQUEST", /user name/);
  });

  test("REGISTER user names: 1 and 32 characters of the allowed set", () => {
    expectReq(dg("REGISTER a secret1"), { cmd: "REGISTER", user: "a", password: "secret1" });
    const long = "Aa0_.-".repeat(5) + "zz";
    expect(long).toHaveLength(32);
    expectReq(dg(`REGISTER ${long} secret1`), { cmd: "REGISTER", user: long, password: "secret1" });
    expect(isValidUser(long)).toBe(true);
    expect(isValidUser(`${long}z`)).toBe(false);
    expect(isValidUser("")).toBe(false);
  });

  test("BAD_PASSWORD: 6..128 bytes allowed", () => {
    expectErr(dg("REGISTER alice 12345"), "BAD_PASSWORD", PROTOCOL_ERRORS.BAD_PASSWORD);
    expectReq(dg("REGISTER alice 123456"), { cmd: "REGISTER", user: "alice", password: "123456" });
    expectReq(dg(`REGISTER alice ${"p".repeat(128)}`), { cmd: "REGISTER", user: "alice", password: "p".repeat(128) });
    expectErr(dg(`REGISTER alice ${"p".repeat(129)}`), "BAD_PASSWORD", PROTOCOL_ERRORS.BAD_PASSWORD);
    expectErr(dg("@t REGISTER alice x"), "BAD_PASSWORD", PROTOCOL_ERRORS.BAD_PASSWORD, "t");
  });

  test("BAD_PASSWORD counts UTF-8 bytes, not characters", () => {
    // 3 characters, 6 bytes: allowed
    expectReq(dg("REGISTER alice ééé"), { cmd: "REGISTER", user: "alice", password: "ééé" });
    // 5 bytes in 2 characters: too short
    expectErr(dg("REGISTER alice é€"), "BAD_PASSWORD");
    // 64 × 2 bytes = 128: allowed; 43 × 3 bytes = 129: too long although only 43 characters
    expectReq(dg(`REGISTER alice ${"é".repeat(64)}`), { cmd: "REGISTER", user: "alice", password: "é".repeat(64) });
    expectErr(dg(`REGISTER alice ${"€".repeat(43)}`), "BAD_PASSWORD");
    // 32 × 4 bytes = 128 in 32 emoji: allowed; one more byte: refused
    expectReq(dg(`REGISTER alice ${"😀".repeat(32)}`), { cmd: "REGISTER", user: "alice", password: "😀".repeat(32) });
    expectErr(dg(`REGISTER alice ${"😀".repeat(32)}x`), "BAD_PASSWORD");
  });

  test("TOO_LONG: 4000 bytes of text is fine, 4001 is not (SEND and ALL)", () => {
    const ok = "x".repeat(MAX_TEXT_BYTES);
    const tooLong = "x".repeat(MAX_TEXT_BYTES + 1);
    expectReq(dg(`SEND bob ${ok}`), { cmd: "SEND", to: "bob", text: ok });
    expectReq(dg(`ALL ${ok}`), { cmd: "ALL", text: ok });
    expectReq(dg(`SEND bob ${ok}\n`), { cmd: "SEND", to: "bob", text: ok });
    expectErr(dg(`SEND bob ${tooLong}`), "TOO_LONG", PROTOCOL_ERRORS.TOO_LONG);
    expectErr(dg(`ALL ${tooLong}`), "TOO_LONG", PROTOCOL_ERRORS.TOO_LONG);
    expectErr(dg(`/all ${tooLong}\r\n`), "TOO_LONG", PROTOCOL_ERRORS.TOO_LONG);
  });

  test("TOO_LONG counts UTF-8 bytes", () => {
    const ok = "é".repeat(2000); // 4000 bytes
    const tooLong = `${"é".repeat(2000)}x`; // 4001 bytes
    const emoji = "😀".repeat(1000) + "x"; // 4001 bytes, 1001 code points
    expect(byteLength(ok)).toBe(4000);
    expect(byteLength(tooLong)).toBe(4001);
    expectReq(dg(`SEND bob ${ok}`), { cmd: "SEND", to: "bob", text: ok });
    expectErr(dg(`SEND bob ${tooLong}`), "TOO_LONG");
    expectErr(dg(`ALL ${tooLong}`), "TOO_LONG");
    expectErr(dg(`SEND bob ${emoji}`), "TOO_LONG");
  });

  test.each(["READ", "DELETE", "ACK"])("%s: bad message ids", (cmd) => {
    for (const bad of ["a b", "a!b", "x".repeat(41), "é", "a/b", " a", "a "]) {
      expectErr(dg(`${cmd} ${bad}`), "BAD_REQUEST", `usage: ${cmd} <message id>`);
    }
    const longest = "Az09_.:-".repeat(5);
    expect(longest).toHaveLength(40);
    expect(isValidMessageId(longest)).toBe(true);
    expect(dg(`${cmd.toLowerCase()} ${longest}`)).toEqual({ ok: true, tag: undefined, req: { cmd, id: longest } });
  });

  test.each(["CAP ACKS", "CAP NOACK", "CAP ACK ACK", "CAP  ACK", "CAP ECHO", "CAP ack\n\n"])("%j: only CAP ACK exists", (line) => {
    expectErr(dg(line), "BAD_REQUEST", "usage: CAP ACK (the only capability)");
  });

  test.each(["WHO", "INBOX", "SERVERS", "LOGOUT"])("%s takes no arguments", (cmd) => {
    expectErr(dg(`${cmd} x`), "BAD_REQUEST", `usage: ${cmd} (no arguments)`);
    expectErr(dg(`${cmd.toLowerCase()} all users`), "BAD_REQUEST", `usage: ${cmd} (no arguments)`);
    expectErr(dg(`@t ${cmd}  `), "BAD_REQUEST", `usage: ${cmd} (no arguments)`, "t");
  });
});

describe("parseDatagram: unknown commands", () => {
  test("the word is echoed", () => {
    expectErr(dg("HELLO world"), "UNKNOWN_COMMAND", "HELLO");
    expectErr(dg("/nick bob"), "UNKNOWN_COMMAND", "NICK");
    expectErr(dg("LIVE"), "UNKNOWN_COMMAND", "LIVE");
    expectErr(dg("SENDX bob hi"), "UNKNOWN_COMMAND", "SENDX");
  });

  test("the echo cannot smuggle control characters or whitespace", () => {
    const p = dg("A\tB\rC\x1b[31mD\x7fE\u0085F\u2028G\nH\x07");
    expectErr(p, "UNKNOWN_COMMAND", "A?B?C?[31MD?E?F?G?H?");
    if (!p.ok) expect(formatErr(p.code, p.message)).toBe("ERR UNKNOWN_COMMAND A?B?C?[31MD?E?F?G?H?");
  });

  test("the echo is truncated at 32 characters", () => {
    expectErr(dg("X".repeat(32)), "UNKNOWN_COMMAND", "X".repeat(32));
    expectErr(dg("X".repeat(33)), "UNKNOWN_COMMAND", `${"X".repeat(32)}...`);
    expectErr(dg(`${"y".repeat(5000)} z`), "UNKNOWN_COMMAND", `${"Y".repeat(32)}...`);
  });

  test("truncation never splits a character in two (the echo stays valid text)", () => {
    const p = dg(`${"X".repeat(31)}😀😀`);
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.message.isWellFormed()).toBe(true);
    expect(p.message).toBe(`${"X".repeat(31)}😀...`);
    expect(Buffer.from(p.message).toString("utf8")).toBe(p.message);
  });

  test("a leading space is not tolerated: the command word is empty", () => {
    expectErr(dg(" WHO"), "UNKNOWN_COMMAND");
  });
});

// ---------------------------------------------------------------------------------------------

test("framing both ways: frame adds one newline, unframe takes one newline or CRLF off, and nothing else", () => {
  expect(frame("OK BYE")).toBe("OK BYE\n");
  expect(unframe(frame("OK BYE"))).toBe("OK BYE");
  expect(unframe("a\r\n")).toBe("a");
  expect(unframe("a\n\n")).toBe("a\n");
  expect(unframe("a")).toBe("a");
  expect(unframe("")).toBe("");
});

describe("formatting", () => {
  const t = new Date(Date.UTC(2026, 10, 22, 23, 40, 0, 123));

  test("times are ISO-8601 UTC with milliseconds", () => {
    expect(formatTime(t)).toBe("2026-11-22T23:40:00.123Z");
    expect(formatTime(new Date(Date.UTC(2026, 0, 1)))).toBe("2026-01-01T00:00:00.000Z");
  });

  test("formatOk / formatErr / withTag", () => {
    expect(formatOk("BYE")).toBe("OK BYE");
    expect(formatOk("SENT", "m1", "DELIVERED")).toBe("OK SENT m1 DELIVERED");
    expect(formatOk("WHO", 3)).toBe("OK WHO 3");
    expect(formatErr("AUTH")).toBe(`ERR AUTH ${PROTOCOL_ERRORS.AUTH}`);
    expect(formatErr("FULL", "try 10.0.0.2:4999 10.0.0.3:4999")).toBe("ERR FULL try 10.0.0.2:4999 10.0.0.3:4999");
    for (const code of Object.keys(PROTOCOL_ERRORS) as ProtocolErrorCode[]) {
      expect(formatErr(code)).toMatch(new RegExp(`^ERR ${code} \\S`));
    }
    expect(withTag(undefined, "OK BYE")).toBe("OK BYE");
    expect(withTag("t1", "OK BYE")).toBe("@t1 OK BYE");
  });

  test("formatMsg", () => {
    expect(formatMsg("m1", "alice", t, "hi there\nsecond line")).toBe("MSG m1 alice 2026-11-22T23:40:00.123Z hi there\nsecond line");
    expect(formatMsg("m2", "*bob", t, "to all")).toBe("MSG m2 *bob 2026-11-22T23:40:00.123Z to all");
  });

  test("formatServer", () => {
    expect(formatServer("eu-1", "10.0.0.1:4999", true, 12, 1000)).toBe("SERVER eu-1 10.0.0.1:4999 UP 12/1000");
    expect(formatServer("us-2", "[::1]:4999", false, 0, 50)).toBe("SERVER us-2 [::1]:4999 DOWN 0/50");
  });

  test("formatItem: one line, preview of the first 60 code points", () => {
    expect(formatItem("m1", "alice", t, false, "short")).toBe("ITEM m1 alice 2026-11-22T23:40:00.123Z NEW short");
    expect(formatItem("m1", "alice", t, true, "short")).toBe("ITEM m1 alice 2026-11-22T23:40:00.123Z READ short");
    const long = "0123456789".repeat(10);
    expect(formatItem("m1", "alice", t, false, long)).toBe(`ITEM m1 alice 2026-11-22T23:40:00.123Z NEW ${long.slice(0, 60)}`);
    const line = formatItem("m1", "alice", t, false, "a\nb\r\nc");
    expect(line).toBe("ITEM m1 alice 2026-11-22T23:40:00.123Z NEW a b  c");
    expect(line).not.toMatch(/[\r\n]/);
  });

  test("preview counts code points, not UTF-16 units, and never splits a character", () => {
    expect(INBOX_PREVIEW_CHARS).toBe(60);
    const emoji = "😀".repeat(70);
    const p = preview(emoji);
    expect(Array.from(p)).toHaveLength(60);
    expect(p).toBe("😀".repeat(60));
    expect(p.isWellFormed()).toBe(true);
    expect(preview(`${"\n".repeat(59)}xyz`)).toBe(`${" ".repeat(59)}x`);
    expect(preview("")).toBe("");
  });

  describe("formatOnline", () => {
    const users = (n: number, len = 32) => Array.from({ length: n }, (_, i) => `u${i}`.padEnd(len, "x"));

    function check(list: string[], tag?: string): string[] {
      const lines = formatOnline(list, tag);
      expect(lines.length).toBeGreaterThanOrEqual(1);
      const seen: string[] = [];
      for (const l of lines) {
        expect(Buffer.byteLength(l)).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
        const p = parseServerLine(l);
        expect(p.kind).toBe("ONLINE");
        expect(p.tag).toBe(tag);
        if (p.kind === "ONLINE") seen.push(...p.users);
      }
      expect(seen).toEqual(list);
      return lines;
    }

    test("empty list: one bare ONLINE line", () => {
      expect(formatOnline([])).toEqual(["ONLINE"]);
      expect(formatOnline([], "t")).toEqual(["@t ONLINE"]);
    });

    test("a short list fits one datagram", () => {
      expect(formatOnline(["alice", "bob"])).toEqual(["ONLINE alice bob"]);
      expect(formatOnline(["alice", "bob"], "t9")).toEqual(["@t9 ONLINE alice bob"]);
    });

    test("a long list is split into datagrams of at most 8192 bytes, losing no one", () => {
      const list = users(2000);
      const lines = check(list);
      // 2000 × 33 bytes do not fit one datagram
      expect(lines.length).toBeGreaterThanOrEqual(9);
      // greedy packing: each line but the last could not take the next user
      for (const l of lines.slice(0, -1)) expect(Buffer.byteLength(l) + 33).toBeGreaterThan(MAX_DATAGRAM_BYTES);
    });

    test("the tag counts towards the limit", () => {
      const tag = "T".repeat(32);
      const lines = check(users(2000), tag);
      for (const l of lines) expect(l.startsWith(`@${tag} ONLINE `)).toBe(true);
      expect(Math.max(...lines.map((l) => Buffer.byteLength(l)))).toBeGreaterThan(MAX_DATAGRAM_BYTES - 40);
    });

    test("boundary: a line exactly filling the datagram is not split", () => {
      // "ONLINE" (6) + n × (1 + len) == 8192 with len 15 -> n = 511.625; use mixed lengths to hit exactly
      const list = users(511, 15); // 6 + 511*16 = 8182
      list.push("z".repeat(9)); // + 10 = 8192
      const lines = check(list);
      expect(lines).toHaveLength(1);
      expect(Buffer.byteLength(lines[0]!)).toBe(8192);
      const more = [...list, "q"];
      expect(check(more)).toHaveLength(2);
      const tagged = check(list, "ab"); // 4 more bytes: must split
      expect(tagged).toHaveLength(2);
    });

    test.each([1, 2, 7, 100, 5000])("random-length users, %i of them, with and without tag", (n) => {
      let s = n;
      const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8;
      const list = Array.from({ length: n }, (_, i) => `${i}`.padEnd(1 + (rnd() % 32), "_").slice(0, 32));
      check(list);
      check(list, "tag-1");
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe("parseServerLine", () => {
  const t = new Date(Date.UTC(2026, 10, 22, 23, 40, 0, 123));
  const iso = "2026-11-22T23:40:00.123Z";

  test("OK", () => {
    const l = formatOk("SENT", "m1", "DELIVERED");
    expect(parseServerLine(l)).toEqual({ kind: "OK", tag: undefined, word: "SENT", args: ["m1", "DELIVERED"], raw: l });
    expect(parseServerLine("OK BYE")).toMatchObject({ kind: "OK", word: "BYE", args: [] });
    expect(parseServerLine("OK LOGIN alice tok")).toMatchObject({ kind: "OK", word: "LOGIN", args: ["alice", "tok"] });
  });

  test("ERR with and without human text", () => {
    const l = formatErr("NO_SUCH_USER");
    expect(parseServerLine(l)).toEqual({ kind: "ERR", tag: undefined, code: "NO_SUCH_USER", text: PROTOCOL_ERRORS.NO_SUCH_USER, raw: l });
    expect(parseServerLine(formatErr("FULL", "try a:1 b:2"))).toMatchObject({ kind: "ERR", code: "FULL", text: "try a:1 b:2" });
    expect(parseServerLine("ERR AUTH")).toMatchObject({ kind: "ERR", code: "AUTH", text: "" });
  });

  test("MSG keeps spaces and newlines of the text", () => {
    const text = "hello  world\nsecond line\r\n third ";
    const l = formatMsg("1700000000000-3", "*alice", t, text);
    expect(parseServerLine(l)).toEqual({ kind: "MSG", tag: undefined, id: "1700000000000-3", from: "*alice", time: iso, text, raw: l });
    expect(parseServerLine(formatMsg("m", "a", t, ""))).toMatchObject({ kind: "MSG", text: "" });
  });

  test("ITEM", () => {
    const l = formatItem("m9", "bob", t, true, "a preview with spaces\nand a newline");
    expect(parseServerLine(l)).toEqual({
      kind: "ITEM",
      tag: undefined,
      id: "m9",
      from: "bob",
      time: iso,
      state: "READ",
      preview: "a preview with spaces and a newline",
      raw: l,
    });
    expect(parseServerLine(formatItem("m9", "bob", t, false, "x"))).toMatchObject({ kind: "ITEM", state: "NEW", preview: "x" });
  });

  test("ONLINE", () => {
    expect(parseServerLine("ONLINE alice bob")).toMatchObject({ kind: "ONLINE", users: ["alice", "bob"] });
    expect(parseServerLine("ONLINE")).toMatchObject({ kind: "ONLINE", users: [] });
  });

  test("SERVER", () => {
    const l = formatServer("eu-1", "10.0.0.1:4999", true, 12, 1000);
    expect(parseServerLine(l)).toEqual({ kind: "SERVER", tag: undefined, name: "eu-1", address: "10.0.0.1:4999", up: true, online: 12, quota: 1000, raw: l });
    expect(parseServerLine(formatServer("x", "[::1]:1", false, 0, 5))).toMatchObject({ kind: "SERVER", up: false, online: 0, quota: 5 });
    expect(parseServerLine("SERVER eu-1 h:1 UP many/1000").kind).toBe("OTHER");
    expect(parseServerLine("SERVER eu-1 h:1 UP").kind).toBe("OTHER");
    expect(parseServerLine("SERVER eu-1 h:1 UP 1/2 extra").kind).toBe("OTHER");
  });

  test("BYE, REDIRECT, yes", () => {
    expect(parseServerLine("BYE replaced")).toEqual({ kind: "BYE", tag: undefined, reason: "replaced", raw: "BYE replaced" });
    expect(parseServerLine("REDIRECT 10.0.0.2:4999")).toEqual({ kind: "REDIRECT", tag: undefined, address: "10.0.0.2:4999", raw: "REDIRECT 10.0.0.2:4999" });
    expect(parseServerLine(HEARTBEAT_REPLY)).toEqual({ kind: "YES", tag: undefined, raw: "yes" });
    expect(parseServerLine("yes please").kind).toBe("OTHER");
  });

  test("tagged lines of every kind", () => {
    const lines = [
      formatOk("BYE"),
      formatErr("TOO_LONG"),
      formatMsg("m1", "a", t, "x y"),
      formatItem("m1", "a", t, false, "x y"),
      "ONLINE a b",
      formatServer("s", "h:1", true, 1, 2),
      "BYE expired",
      "REDIRECT h:2",
      "yes",
    ];
    const kinds = ["OK", "ERR", "MSG", "ITEM", "ONLINE", "SERVER", "BYE", "REDIRECT", "YES"];
    lines.forEach((l, i) => {
      const tagged = withTag("r_2-x", l);
      const p = parseServerLine(tagged);
      expect(p.kind).toBe(kinds[i]);
      expect(p.tag).toBe("r_2-x");
      expect(p.raw).toBe(tagged);
      expect(parseServerLine(l)).toEqual({ ...p, tag: undefined, raw: l });
    });
  });

  test("unknown or malformed lines are OTHER, never a throw", () => {
    for (const l of ["", "OK", "ERR", "MSG a b c", "ITEM a b c d", "hello", "ok BYE", "@t", "@t ", "YES", "\0\n"]) {
      const p = parseServerLine(l);
      expect(p.kind).toBe("OTHER");
      expect(p.raw).toBe(l);
    }
  });

  test("encode gives the UTF-8 bytes the parser reads back", () => {
    const l = formatMsg("m1", "a", t, "héllo 😀");
    expect(Buffer.from(encode(l)).toString("utf8")).toBe(l);
    expect(encode(l).length).toBe(byteLength(l));
  });

  test("a client's request survives a round trip through the codec", () => {
    const text = "multi\nline  text 😀";
    const bytes = encode(withTag("c1", `SEND bob ${text}`));
    expectReq(parseDatagram(bytes), { cmd: "SEND", to: "bob", text }, "c1");
  });
});
