/**
 * The real command: --help, --check, bad config files (exit code 2, the bad field named), and a
 * full run as a process: migrations, /healthz, the API, /metrics, an action, JSON logs, and a
 * clean stop on SIGTERM.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, REPO_ROOT } from "@pesan/cluster";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { lines, MONITOR_MAIN, waitFor } from "./support/monitor.ts";

const dir = mkdtempSync(join(tmpdir(), "pesan-monitor-cli-"));
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase("moncli");
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MONITOR_MAIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let n = 0;
function file(text: string, ext = "yaml"): string {
  const f = join(dir, `config-${++n}.${ext}`);
  writeFileSync(f, text);
  return f;
}

test("--help prints the usage and exits 0", () => {
  const r = run(["--help"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^pesan monitor-bot:/);
  expect(r.stdout).toContain("--config FILE");
  expect(r.stdout).toContain("${ENV:NAME}");
  expect(r.stdout).toContain("/api/rmon/:server");
});

test("--check accepts a valid file (YAML or JSON) without starting anything", () => {
  const yaml = run(["--check", "--config", file("database:\n  url: postgres://u@127.0.0.1:1/x\ncomponents:\n  - { type: udp, name: gw, address: 127.0.0.1:4999 }\n")]);
  expect(yaml).toMatchObject({ code: 0, stdout: expect.stringContaining("valid (0 targets, 1 components, 0 messaging probes, 0 actions)") });
  const json = run(["--check"], { MONITOR_CONFIG: file(JSON.stringify({ database: { url: "${ENV:DB}" } }), "json"), DB: "postgres://u@h/x" });
  expect(json.code).toBe(0);
});

describe("a bad config file stops the program with exit code 2 and names the field", () => {
  const cases: Array<[string, string, Record<string, string>, RegExp]> = [
    ["no such file", "", {}, /config file .*nope\.yaml: cannot read it: ENOENT/],
    ["not YAML", "database: [unclosed\n", {}, /not valid YAML or JSON/],
    ["no database", "http:\n  port: 8080\n", {}, /- database: required \(expected object\)/],
    ["misspelt key", "database:\n  url: postgres://u@h/x\n  poolmax: 3\n", {}, /- database: Unrecognized key: "poolmax"/],
    ["unset variable", "database:\n  url: ${ENV:PESAN_TEST_UNSET_DB}\n", {}, /- database\.url: environment variable PESAN_TEST_UNSET_DB is not set/],
    ["bad target", "database: { url: postgres://u@h/x }\ntargets:\n  - { name: web1, host: h, username: u, privateKey: x, hostKey: nope }\n", {}, /- targets\[0\]\.hostKey: expected a known_hosts line/],
    ["bad local target", "database: { url: postgres://u@h/x }\ntargets:\n  - { name: here, local: true, disk: /nonexistent, services: [{ name: x, tcp: nowhere }] }\n", {}, /- targets\[0\]\.services\[0\]\.tcp: must be host:port/],
  ];
  test.each(cases)("%s", (name, text, env, expected) => {
    const path = name === "no such file" ? join(dir, "nope.yaml") : file(text);
    const r = run(["--config", path], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(expected);
    expect(r.stdout).toBe("");
  });
});

test("runs as a process: migrations, /healthz, API, /metrics, actions, JSON logs, SIGTERM", async () => {
  const [httpPort] = await freePorts(1);
  const [deadUdp] = await freePorts(1);
  const actionsOut = join(dir, "actions.log");
  const config = file(
    [
      "instance: cli-test",
      // In YAML flow style ({...}) a ${ENV:...} value must be quoted.
      'http: { host: 127.0.0.1, port: "${ENV:MON_PORT}" }',
      "database:",
      "  url: ${ENV:MON_DB}",
      "defaults: { interval: 300ms, timeout: 300ms }",
      "components:",
      `  - { type: http, name: self, url: "http://127.0.0.1:${httpPort}/healthz" }`,
      `  - { type: udp, name: dead-gateway, address: "127.0.0.1:${deadUdp}" }`,
      // This machine, no SSH: its numbers, and the same two checks as services of it.
      "targets:",
      "  - name: here",
      "    local: true",
      "    services:",
      `      - { name: self, http: "http://127.0.0.1:${httpPort}/healthz" }`,
      `      - { name: dead-gateway, udp: "127.0.0.1:${deadUdp}" }`,
      "actions:",
      `  - { name: record, on: [down], command: 'echo "$PESAN_EVENT $PESAN_COMPONENT" >> ${actionsOut}' }`,
    ].join("\n"),
  );
  const proc = spawn(process.execPath, [MONITOR_MAIN, "--config", config], {
    cwd: REPO_ROOT,
    env: { ...process.env, MON_PORT: String(httpPort), MON_DB: db.url },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d: Buffer) => (stdout += d));
  proc.stderr.on("data", (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  try {
    const base = `http://127.0.0.1:${httpPort}`;
    const health = await waitFor("/healthz", async () => {
      if (proc.exitCode !== null) throw new Error(`exited ${proc.exitCode}: ${stderr}`);
      const r = await fetch(`${base}/healthz`);
      return r.status === 200 ? ((await r.json()) as Record<string, unknown>) : undefined;
    }, 20_000, 100);
    expect(health).toMatchObject({ status: "ok", checks: { postgres: "ok" }, service: "monitor-bot", instance: "cli-test" });

    expect(await waitFor("the down action", () => lines(actionsOut).find((l) => l.startsWith("down udp:dead-gateway@")))).toBe(`down udp:dead-gateway@127.0.0.1:${deadUdp}`);
    const components = (await (await fetch(`${base}/api/components`)).json()) as Record<string, Record<string, { status: string }>>;
    expect(components.self?.[`127.0.0.1:${httpPort}`]?.status).toBe("up");
    const svc = await waitFor("both services probed", async () => {
      const r = (await (await fetch(`${base}/api/svcstats`)).json()) as Record<string, Record<string, { status: string }>>;
      return r.here?.self?.status === "On" && r.here["dead-gateway"] ? r : undefined;
    });
    expect(svc).toEqual({ here: { self: { status: "On", updatetime: expect.any(String) }, "dead-gateway": { status: "Off", updatetime: expect.any(String) } } });
    const rmon = await waitFor("this machine's numbers", async () => {
      const r = (await (await fetch(`${base}/api/rmon/here`)).json()) as Record<string, number | null>;
      return r.cpu !== null && r.mem !== null && r.hdd !== null ? r : undefined;
    });
    expect(rmon).toEqual({ cpu: expect.any(Number), mem: expect.any(Number), hdd: expect.any(Number) });
    expect((await fetch(`${base}/api/rmon/anything`)).status).toBe(404);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain(`pesan_monitor_component_up{type="udp",component="dead-gateway",address="127.0.0.1:${deadUdp}",service="monitor-bot"} 0`);
    expect(metrics).toContain("nodejs_eventloop_lag_seconds");

    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
    const logs = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { service: string; msg: string });
    expect(logs.every((l) => l.service === "monitor-bot")).toBe(true);
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(["monitor migrations applied", "monitor API listening", "shutting down", "stopped"]));
  } finally {
    if (proc.exitCode === null) proc.kill("SIGKILL");
    await exited;
  }
});
