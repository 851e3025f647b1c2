import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { bool, commonSettings, hostPort, id, int, loadConfig, logLevel, pgUrl, port, redisUrl, type Env } from "./config.ts";
import { ConfigError } from "../errors.ts";

const schema = z.object({
  ...commonSettings,
  HTTP_PORT: port().default(9100),
  UDP_PORT: port().default(4999),
  QUOTA: int(0, 1000).default(10),
  RELIABLE: bool().default(false),
  NODE_ID: id().optional(),
  DATABASE_URL: pgUrl().optional(),
  REDIS_URL: redisUrl().optional(),
  PUBLIC_ADDRESS: hostPort().default("127.0.0.1:4999"),
  VERBOSITY: logLevel(),
});

/** Runs loadConfig expecting a ConfigError; returns it. */
function configError(env: Env): ConfigError {
  try {
    loadConfig(schema, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("loadConfig accepted a bad configuration");
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pesan-config-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
let n = 0;
function file(content: string): string {
  const p = join(dir, `c${n++}.json`);
  writeFileSync(p, content);
  return p;
}

describe("loadConfig", () => {
  test("an empty environment gives every default", () => {
    expect(loadConfig(schema, {})).toEqual({
      LOG_LEVEL: "info",
      HTTP_HOST: "127.0.0.1",
      BUS_PREFIX: "pesan:",
      SHUTDOWN_TIMEOUT_MS: 10_000,
      HTTP_PORT: 9100,
      UDP_PORT: 4999,
      QUOTA: 10,
      RELIABLE: false,
      PUBLIC_ADDRESS: "127.0.0.1:4999",
      VERBOSITY: "info",
    });
  });

  test("empty or undefined variables count as unset", () => {
    const c = loadConfig(schema, { HTTP_PORT: "", QUOTA: undefined, LOG_LEVEL: "", DATABASE_URL: "" });
    expect(c.HTTP_PORT).toBe(9100);
    expect(c.QUOTA).toBe(10);
    expect(c.LOG_LEVEL).toBe("info");
    expect(c.DATABASE_URL).toBeUndefined();
  });

  test("values are coerced to their types", () => {
    const c = loadConfig(schema, {
      HTTP_PORT: "8080",
      UDP_PORT: " 0 ",
      QUOTA: "1000",
      SHUTDOWN_TIMEOUT_MS: "100",
      RELIABLE: "yes",
      LOG_LEVEL: "debug",
      NODE_ID: "gw-1.eu_2",
      DATABASE_URL: "postgresql://u@h/db",
      REDIS_URL: "rediss://h:6380",
      PUBLIC_ADDRESS: "[::1]:65535",
    });
    expect(c).toMatchObject({
      HTTP_PORT: 8080,
      UDP_PORT: 0,
      QUOTA: 1000,
      SHUTDOWN_TIMEOUT_MS: 100,
      RELIABLE: true,
      LOG_LEVEL: "debug",
      NODE_ID: "gw-1.eu_2",
      DATABASE_URL: "postgresql://u@h/db",
      REDIS_URL: "rediss://h:6380",
      PUBLIC_ADDRESS: "[::1]:65535",
    });
    expect(typeof c.HTTP_PORT).toBe("number");
  });

  test.each([
    ["true", true],
    ["1", true],
    ["yes", true],
    ["false", false],
    ["0", false],
    ["no", false],
  ])("bool %j -> %j", (v, want) => {
    expect(loadConfig(schema, { RELIABLE: v }).RELIABLE).toBe(want);
  });

  test("settings it does not know are ignored", () => {
    const c = loadConfig(schema, { PATH: "/bin", SOMETHING_ELSE: "x" }) as Record<string, unknown>;
    expect(c.PATH).toBeUndefined();
    expect(c.SOMETHING_ELSE).toBeUndefined();
  });

  test("one ConfigError names every bad setting with its bad value", () => {
    const bad: Env = {
      HTTP_PORT: "65536",
      UDP_PORT: "-1",
      QUOTA: "1.5",
      SHUTDOWN_TIMEOUT_MS: "abc",
      RELIABLE: "maybe",
      LOG_LEVEL: "loud",
      NODE_ID: "bad id!",
      DATABASE_URL: "mysql://h/db",
      REDIS_URL: "http://h",
      PUBLIC_ADDRESS: "nohost",
      BUS_PREFIX: "a b",
      // a good one, not to be named
      HTTP_HOST: "0.0.0.0",
    };
    const e = configError(bad);
    const named = new Set(e.issues.map((i) => i.split(":")[0]));
    const badKeys = Object.keys(bad).filter((k) => k !== "HTTP_HOST");
    expect([...named].sort()).toEqual(badKeys.sort());
    for (const k of badKeys) {
      const issue = e.issues.find((i) => i.startsWith(`${k}: `));
      expect(issue).toContain(`(got ${JSON.stringify(bad[k])})`);
      expect(e.message).toContain(issue);
    }
    expect(e.message).not.toContain("HTTP_HOST");
    expect(e.message.startsWith("invalid configuration:")).toBe(true);
    expect(e.name).toBe("ConfigError");
  });

  test("DATABASE_URL takes libpq's multi-host form (a primary and its replicas) and names what is wrong with a bad one", () => {
    const multi = "postgres://pesan:pw@pg1:5432,pg2:5432/pesan?target_session_attrs=read-write";
    expect(loadConfig(schema, { DATABASE_URL: multi }).DATABASE_URL).toBe(multi);
    expect(configError({ DATABASE_URL: "postgres://pg1:5432,pg2:5432/pesan" }).issues[0]).toMatch(/^DATABASE_URL: a URL with several hosts needs target_session_attrs=read-write/);
    expect(configError({ DATABASE_URL: "postgres://pg1:5432,pg2:70000/pesan?target_session_attrs=read-write" }).issues[0]).toMatch(/^DATABASE_URL: has a bad port "70000" \(host 2 of 2\)/);
  });

  test("a missing required setting is named (without a value)", () => {
    const required = z.object({ DATABASE_URL: pgUrl(), QUOTA: int(0, 10) });
    let err: unknown;
    try {
      loadConfig(required, { QUOTA: "11" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    expect(issues).toHaveLength(2);
    expect(issues.find((i) => i.startsWith("DATABASE_URL: "))).not.toContain("got");
    expect(issues.find((i) => i.startsWith("QUOTA: "))).toContain('(got "11")');
  });

  test.each([
    ["HTTP_PORT", "65536"],
    ["HTTP_PORT", "-1"],
    ["HTTP_PORT", "80.5"],
    ["HTTP_PORT", "eighty"],
    ["QUOTA", "1001"],
    ["SHUTDOWN_TIMEOUT_MS", "99"],
    ["PUBLIC_ADDRESS", "host"],
    ["PUBLIC_ADDRESS", "host:"],
    ["PUBLIC_ADDRESS", "host:123456"],
    ["PUBLIC_ADDRESS", "host:70000"],
    ["PUBLIC_ADDRESS", "::1:4999"],
    ["PUBLIC_ADDRESS", "ho st:1"],
    ["NODE_ID", "x".repeat(65)],
    ["RELIABLE", "TRUE!"],
  ])("%s=%j is refused", (key, value) => {
    const e = configError({ [key]: value });
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]!.startsWith(`${key}: `)).toBe(true);
    expect(e.issues[0]!.endsWith(`(got ${JSON.stringify(value)})`)).toBe(true);
  });

  test.each(["h:0", "h:65535", "a.b-c_d:1", "[::1]:4999", "[2001:db8::1]:80", "10.0.0.1:4999"])("PUBLIC_ADDRESS=%j is accepted", (v) => {
    expect(loadConfig(schema, { PUBLIC_ADDRESS: v }).PUBLIC_ADDRESS).toBe(v);
  });
});

describe("PESAN_CONFIG_FILE", () => {
  test("its settings are merged, the environment wins", () => {
    const f = file(JSON.stringify({ HTTP_PORT: 7000, QUOTA: "50", RELIABLE: true, LOG_LEVEL: "warn", NODE_ID: "from-file" }));
    const c = loadConfig(schema, { PESAN_CONFIG_FILE: f, QUOTA: "60", NODE_ID: "from-env", LOG_LEVEL: "" });
    expect(c.HTTP_PORT).toBe(7000); // JSON number
    expect(c.RELIABLE).toBe(true); // JSON boolean
    expect(c.QUOTA).toBe(60); // env wins
    expect(c.NODE_ID).toBe("from-env");
    expect(c.LOG_LEVEL).toBe("warn"); // an empty env var does not hide the file's value
    expect(c.UDP_PORT).toBe(4999); // default where neither sets it
  });

  test("null or empty values in the file count as unset, like empty variables", () => {
    const f = file(JSON.stringify({ HTTP_PORT: "", UDP_PORT: null, DATABASE_URL: null, HTTP_HOST: "" }));
    const c = loadConfig(schema, { PESAN_CONFIG_FILE: f });
    expect(c.HTTP_PORT).toBe(9100);
    expect(c.UDP_PORT).toBe(4999);
    expect(c.DATABASE_URL).toBeUndefined();
    expect(c.HTTP_HOST).toBe("127.0.0.1");
  });

  test("bad values from the file are reported with the rest", () => {
    const f = file(JSON.stringify({ HTTP_PORT: 70000, RELIABLE: "perhaps" }));
    const e = configError({ PESAN_CONFIG_FILE: f, QUOTA: "-5" });
    expect(e.issues).toHaveLength(3);
    expect(e.message).toContain('HTTP_PORT: ');
    expect(e.message).toContain('(got "70000")');
    expect(e.message).toContain('(got "perhaps")');
    expect(e.message).toContain('(got "-5")');
  });

  test("a missing file is a ConfigError naming the file", () => {
    const missing = join(dir, "nope.json");
    const e = configError({ PESAN_CONFIG_FILE: missing });
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]).toContain(`PESAN_CONFIG_FILE: cannot read ${missing}`);
    expect(e.issues[0]).toContain("ENOENT");
  });

  test("a directory is a ConfigError", () => {
    const e = configError({ PESAN_CONFIG_FILE: dir });
    expect(e.issues[0]).toContain(`cannot read ${dir}`);
  });

  test("invalid JSON is a ConfigError", () => {
    const f = file("{ HTTP_PORT: 1 ");
    const e = configError({ PESAN_CONFIG_FILE: f });
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]).toContain(`cannot read ${f}`);
  });

  test.each(["[1,2]", "42", '"HTTP_PORT=1"', "null", "true"])("a file holding %s (not an object) is a ConfigError", (content) => {
    const f = file(content);
    const e = configError({ PESAN_CONFIG_FILE: f });
    expect(e.issues).toEqual([`PESAN_CONFIG_FILE: ${f} must hold a JSON object of setting names to values`]);
  });

  test("an empty PESAN_CONFIG_FILE reads no file", () => {
    expect(loadConfig(schema, { PESAN_CONFIG_FILE: "", QUOTA: "3" }).QUOTA).toBe(3);
  });

  test("loadConfig reads process.env by default", () => {
    const saved = process.env.QUOTA;
    process.env.QUOTA = "777";
    try {
      expect(loadConfig(schema).QUOTA).toBe(777);
    } finally {
      if (saved === undefined) delete process.env.QUOTA;
      else process.env.QUOTA = saved;
    }
  });
});
