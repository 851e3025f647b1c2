import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@pesan/shared/errors";
import { parseMonitorConfig } from "./config.ts";
import { DEFAULT_FACT_COMMANDS } from "../probes/facts.ts";

const dir = mkdtempSync(join(tmpdir(), "pesan-monitor-mconfig-"));
const keyFile = join(dir, "id_rsa");
writeFileSync(keyFile, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = () => ({ database: { url: "postgres://u@127.0.0.1/db" } });
const target = (over: Record<string, unknown> = {}) => ({ name: "web1", host: "127.0.0.1", username: "root", privateKeyFile: keyFile, hostKey: "SHA256:0mE4wOz/P//s0y1zv8svt4o9RjTmLlj6et85vKUAFkk", ...over });

function issues(tree: unknown): string[] {
  try {
    parseMonitorConfig(tree, {});
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  throw new Error("the config was accepted");
}

/** The first target's facts settings. */
const factsOf = (tree: unknown) => parseMonitorConfig(tree, {}).targets[0]!.facts;

describe("targets[].facts", () => {
  test("defaults: the Linux files, every 30 s", () => {
    expect(factsOf({ ...base(), targets: [target()] })).toEqual({ commands: DEFAULT_FACT_COMMANDS, intervalMs: 30_000 });
  });
  test("a command and the interval can be set", () => {
    const f = factsOf({ ...base(), targets: [target({ facts: { commands: { kernel: "uname -a" }, interval: "5m" } })] });
    expect(f).toEqual({ commands: { ...DEFAULT_FACT_COMMANDS, kernel: "uname -a" }, intervalMs: 300_000 });
  });
  test("errors name the setting", () => {
    expect(issues({ ...base(), targets: [target({ facts: { commands: { kernal: "x" }, interval: "1ms" } })] })).toEqual([
      'targets[0].facts.commands: Unrecognized key: "kernal"',
      'targets[0].facts.interval: must be between 1000 ms and 86400000 ms (got 1 ms) (got "1ms")',
    ]);
  });
});

describe("targets[].facts of a local target", () => {
  const local = (over: Record<string, unknown> = {}) => ({ name: "here", local: true, ...over });
  test("defaults: no commands (the files are read directly), every 30 s", () => {
    expect(factsOf({ ...base(), targets: [local()] })).toEqual({ commands: {}, intervalMs: 30_000 });
  });
  test("a command given runs instead of the built-in read", () => {
    expect(factsOf({ ...base(), targets: [local({ facts: { commands: { osRelease: "cat /host/etc/os-release" }, interval: "1m" } })] })).toEqual({
      commands: { osRelease: "cat /host/etc/os-release" },
      intervalMs: 60_000,
    });
  });
  test("errors name the setting", () => {
    expect(issues({ ...base(), targets: [local({ facts: { commands: { uname: "uname" }, interval: "2d" }, disk: "/" })] })).toEqual([
      'targets[0].facts.commands: Unrecognized key: "uname"',
      'targets[0].facts.interval: must be between 1000 ms and 86400000 ms (got 172800000 ms) (got "2d")',
    ]);
    expect(issues({ ...base(), targets: [local({ facts: { commands: { kernel: "" } } })] })).toEqual([expect.stringMatching(/^targets\[0\]\.facts\.commands\.kernel: /)]);
  });
});

describe("maintenance", () => {
  test("one-off and weekly windows", () => {
    const c = parseMonitorConfig(
      {
        ...base(),
        maintenance: [
          { name: "upgrade", components: ["host:web1", "service:web1/*"], from: "2026-12-24T22:00:00Z", to: "2026-12-25T01:00:00+01:00" },
          { weekly: { day: "sun", at: "02:30", duration: "1h" } },
        ],
      },
      {},
    );
    expect(c.maintenance).toEqual([
      { name: "upgrade", components: ["host:web1", "service:web1/*"], kind: "once", from: new Date("2026-12-24T22:00:00Z"), to: new Date("2026-12-25T00:00:00Z") },
      { name: undefined, components: ["*"], kind: "weekly", day: "sun", minuteOfDay: 150, durationMs: 3_600_000 },
    ]);
    expect(parseMonitorConfig(base(), {}).maintenance).toEqual([]);
  });

  test("bad windows: every error names the setting", () => {
    expect(
      issues({
        ...base(),
        maintenance: [
          { from: "2026-12-24 22:00", to: "2026-12-25T01:00:00Z" },
          { from: "2026-12-25T01:00:00Z", to: "2026-12-24T01:00:00Z" },
          { from: "2026-12-25T01:00:00Z" },
          { weekly: { day: "sunday", at: "25:00", duration: "10s" } },
          { components: ["*"] },
          { from: "2026-12-25T01:00:00Z", to: "2026-12-26T01:00:00Z", weekly: { day: "sun", at: "01:00", duration: "1h" } },
        ],
      }),
    ).toEqual([
      'maintenance[0].from: must be an ISO-8601 time with a zone, e.g. 2026-12-24T22:00:00Z (got "2026-12-24 22:00")',
      'maintenance[1].to: must be later than from (got "2026-12-24T01:00:00Z")',
      "maintenance[2].to: a one-off window needs both from and to",
      'maintenance[3].weekly.day: expected one of mon, tue, wed, thu, fri, sat, sun (got "sunday")',
      'maintenance[3].weekly.at: must be HH:MM (UTC, 00:00-23:59) (got "25:00")',
      'maintenance[3].weekly.duration: must be between 60000 ms and 604800000 ms (got 10000 ms) (got "10s")',
      "maintenance[4].from: give either from and to (one-off) or weekly: { day, at, duration }",
      "maintenance[5].weekly: give either from and to (one-off) or weekly: { day, at, duration }",
    ]);
  });
});
