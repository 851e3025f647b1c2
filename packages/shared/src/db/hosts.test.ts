import { parsePgTarget, PgUrlError } from "./hosts.ts";

function bad(url: string): string {
  try {
    parsePgTarget(url);
  } catch (e) {
    expect(e).toBeInstanceOf(PgUrlError);
    return (e as Error).message;
  }
  throw new Error(`accepted ${url}`);
}

test("a single-host URL is kept exactly as it was", () => {
  const url = "postgres://u:p%40ss@db.example:6543/pesan?sslmode=require";
  expect(parsePgTarget(url)).toEqual({ hosts: [{ host: "db.example", port: 6543 }], urls: [url], readWrite: false });
  expect(parsePgTarget("postgresql://h/db").hosts).toEqual([{ host: "h", port: 5432 }]);
  // No host: the local socket, as before.
  expect(parsePgTarget("postgres://u@/db?host=/run/postgresql").urls).toEqual(["postgres://u@/db?host=/run/postgresql"]);
});

test("a multi-host URL becomes one URL per host, in order, without target_session_attrs", () => {
  const t = parsePgTarget("postgres://u:pw@10.0.0.1:5432,pg2,[::1]:5433/pesan?application_name=x&target_session_attrs=read-write&sslmode=disable");
  expect(t.readWrite).toBe(true);
  expect(t.hosts).toEqual([
    { host: "10.0.0.1", port: 5432 },
    { host: "pg2", port: 5432 },
    { host: "::1", port: 5433 },
  ]);
  expect(t.urls).toEqual([
    "postgres://u:pw@10.0.0.1:5432/pesan?application_name=x&sslmode=disable",
    "postgres://u:pw@pg2:5432/pesan?application_name=x&sslmode=disable",
    "postgres://u:pw@[::1]:5433/pesan?application_name=x&sslmode=disable",
  ]);
  for (const u of t.urls) expect(new URL(u).pathname).toBe("/pesan");
});

test("one host with target_session_attrs=read-write is checked for writes too", () => {
  expect(parsePgTarget("postgres://h:1/db?target_session_attrs=read-write")).toEqual({ hosts: [{ host: "h", port: 1 }], urls: ["postgres://h:1/db"], readWrite: true });
  expect(parsePgTarget("postgres://h:1/db?target_session_attrs=any").readWrite).toBe(false);
});

test("bad URLs are refused with a message that names the fault and not the password", () => {
  expect(bad("mysql://h/db")).toBe("must be a postgres:// URL");
  expect(bad("postgres://u:secret@h1:5432,h2:5432/db")).toMatch(/several hosts needs target_session_attrs=read-write/);
  expect(bad("postgres://u:secret@h1:5432,h2:5432/db?target_session_attrs=any")).toMatch(/several hosts needs target_session_attrs=read-write/);
  expect(bad("postgres://h1,h2/db?target_session_attrs=standby")).toBe("target_session_attrs=standby is not supported (read-write or any)");
  expect(bad("postgres://u:secret@h1:5432,,h2/db?target_session_attrs=read-write")).toBe("has an empty host (host 2 of 3)");
  expect(bad("postgres://u:secret@h1:99999,h2/db?target_session_attrs=read-write")).toBe('has a bad port "99999" (host 1 of 2): must be 1-65535');
  expect(bad("postgres://h1:0/db")).toBe('has a bad port "0": must be 1-65535');
  expect(bad("postgres://h1:54x2/db")).toBe('has a bad host "h1:54x2"');
  expect(bad("postgres://[::1/db")).toBe('has a bad host "[::1"');
  expect(bad("postgres://u:secret@h1,/db?target_session_attrs=read-write")).toBe("has an empty host (host 2 of 2)");
  for (const u of ["postgres://u:secret@h1:5432,,h2/db?target_session_attrs=read-write", "postgres://u:secret@h1:99999,h2/db?target_session_attrs=read-write"]) expect(bad(u)).not.toMatch(/secret/);
});
