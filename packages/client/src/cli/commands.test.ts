import { carriesSecret, parseCommand } from "./commands.ts";

describe("parseCommand", () => {
  test("LOGIN and REGISTER, with or without a password, in any case, with or without /", () => {
    expect(parseCommand("LOGIN alice secret1")).toEqual({ kind: "login", user: "alice", password: "secret1" });
    expect(parseCommand("/login alice")).toEqual({ kind: "login", user: "alice", password: undefined });
    expect(parseCommand("/Login")).toEqual({ kind: "login", user: undefined, password: undefined });
    expect(parseCommand("register bob pass with spaces ")).toEqual({ kind: "register", user: "bob", password: "pass with spaces " });
    expect(parseCommand("/register bob \r")).toEqual({ kind: "register", user: "bob", password: undefined });
  });

  test("UNREGISTER, quit, tagged and everything else", () => {
    expect(parseCommand("/unregister")).toEqual({ kind: "unregister", password: undefined });
    expect(parseCommand("UNREGISTER secret1")).toEqual({ kind: "unregister", password: "secret1" });
    expect(parseCommand("/quit")).toEqual({ kind: "quit" });
    expect(parseCommand(" /EXIT ")).toEqual({ kind: "quit" });
    expect(parseCommand("@t1 LOGIN alice secret1")).toEqual({ kind: "tagged", line: "@t1 LOGIN alice secret1" });
    expect(parseCommand("/send bob hi there")).toEqual({ kind: "raw", line: "/send bob hi there" });
    expect(parseCommand("WHO")).toEqual({ kind: "raw", line: "WHO" });
    expect(parseCommand("   ")).toEqual({ kind: "empty" });
  });
});

describe("carriesSecret", () => {
  test.each([
    "LOGIN alice secret1",
    "/login alice secret1",
    "login alice two words",
    "@t1 LOGIN alice secret1",
    "/register bob secret2",
    "UNREGISTER secret1",
    "/unregister x",
    "RESUME alice 3q2Zc0123456789abcdefgh",
    "~12.abcdefabcdefabcd SEND bob hi",
  ])("%s: never stored", (line) => expect(carriesSecret(line)).toBe(true));

  test.each(["/login alice", "/login", "/register bob", "/unregister", "SEND bob my password is x", "/who", "LOGINS a b", ""])("%s: may be stored", (line) =>
    expect(carriesSecret(line)).toBe(false),
  );
});
