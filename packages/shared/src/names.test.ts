import { CLUSTER_NAME_RE, HOST_PORT_RE, isClusterName, isProbeName, isUserName, parseHostPort, parseServerAddress, trailingPort, USER_NAME_RE } from "./names.ts";

describe("user names", () => {
  it("accepts 1-32 of A-Z a-z 0-9 _ . -", () => {
    expect(isUserName("a")).toBe(true);
    expect(isUserName("Alice_1.b-c")).toBe(true);
    expect(isUserName("x".repeat(32))).toBe(true);
    expect(USER_NAME_RE.test("x".repeat(32))).toBe(true);
  });
  it("refuses empty, too long and other characters", () => {
    for (const s of ["", "x".repeat(33), "a b", "a=b", "a,b", "ä", "a\n"]) expect(isUserName(s)).toBe(false);
  });
});

describe("probe names", () => {
  it("are the names starting with probe-, in any case", () => {
    for (const s of ["probe-a", "probe-monitor-1", "Probe-x", "PROBE-"]) expect(isProbeName(s)).toBe(true);
    for (const s of ["probe", "probex", "monitor-probe", "a-probe-b", "prob-e"]) expect(isProbeName(s)).toBe(false);
  });
});

describe("cluster names", () => {
  it("accepts 1-16 of A-Z a-z 0-9 _ -", () => {
    expect(isClusterName("a")).toBe(true);
    expect(isClusterName("east_1-b")).toBe(true);
    expect(CLUSTER_NAME_RE.test("x".repeat(16))).toBe(true);
  });
  it("refuses dots, empty and too long", () => {
    for (const s of ["", "x".repeat(17), "a.b", "a=b", "a b"]) expect(isClusterName(s)).toBe(false);
  });
});

describe("host:port", () => {
  it("finds a trailing port even after a malformed host", () => {
    expect(trailingPort("a b:70000")).toBe(70000);
    expect(trailingPort("h")).toBeUndefined();
  });
  it("splits host names, IPv4 and bracketed IPv6", () => {
    expect(parseHostPort("example.org:4999")).toEqual({ host: "example.org", port: 4999 });
    expect(parseHostPort("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseHostPort("[::1]:5")).toEqual({ host: "[::1]", port: 5 });
  });
  it("leaves the port's range to the caller", () => {
    expect(parseHostPort("h:99999")).toEqual({ host: "h", port: 99999 });
  });
  it("refuses anything else", () => {
    for (const s of ["", "h", "h:", ":1", "h:123456", "::1:5", "[::1]", "h:1=x", "a b:1", "h:1 "]) {
      expect(parseHostPort(s)).toBeUndefined();
      expect(HOST_PORT_RE.test(s)).toBe(false);
    }
  });
});

describe("parseServerAddress (a URL's host list: DATABASE_URL, REDIS_URL)", () => {
  it("takes host, host:port, [v6] and [v6]:port, with the default port when none is given", () => {
    expect(parseServerAddress("pg1", 5432)).toEqual({ ok: true, host: "pg1", port: 5432 });
    expect(parseServerAddress("pg1:", 5432)).toEqual({ ok: true, host: "pg1", port: 5432 });
    expect(parseServerAddress("10.0.0.1:6000", 5432)).toEqual({ ok: true, host: "10.0.0.1", port: 6000 });
    expect(parseServerAddress("[::1]", 26379)).toEqual({ ok: true, host: "::1", port: 26379 });
    expect(parseServerAddress("[fe80::1]:7000", 26379)).toEqual({ ok: true, host: "fe80::1", port: 7000 });
  });
  it("tells a bad port (1-65535) from a bad address", () => {
    for (const p of ["0", "65536", "99999", "123456"]) expect(parseServerAddress(`h:${p}`, 1)).toEqual({ ok: false, bad: "port", port: p });
    for (const s of ["", "::1", "[::1", "h:54x2", "h:1:2", "a b", "[zz]:1", "h/x"]) expect([s, parseServerAddress(s, 1)]).toEqual([s, { ok: false, bad: "address" }]);
  });
});
