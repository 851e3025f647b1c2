import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { ConfigError } from "@pesan/shared/errors";
import { DEFAULT_COMMANDS, loadMonitorConfig, parseMonitorConfig, type Env, type SshTargetConfig, type TargetConfig } from "./config.ts";

/** The resolved target as an SSH one (the test made it so). */
function ssh(t: TargetConfig | undefined): SshTargetConfig {
  if (t?.kind !== "ssh") throw new Error(`expected an SSH target, got ${t?.kind}`);
  return t;
}

const FP = "SHA256:0mE4wOz/P//s0y1zv8svt4o9RjTmLlj6et85vKUAFkk";
// At load time, not in beforeAll: the test.each table below is built when the module loads.
const dir = mkdtempSync(join(tmpdir(), "pesan-monitor-config-"));
const keyText = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
const keyFile = join(dir, "id_rsa");
writeFileSync(keyFile, keyText);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = () => ({ database: { url: "postgres://u@127.0.0.1/db" } });
const target = (over: Record<string, unknown> = {}) => ({ name: "web1", host: "127.0.0.1", username: "root", privateKeyFile: keyFile, hostKey: FP, ...over });

/** The ConfigError's issue lines. */
function issues(tree: unknown, env: Env = {}): string[] {
  try {
    parseMonitorConfig(tree, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  throw new Error("the config was accepted");
}

describe("a minimal config", () => {
  test("only database.url: everything else has defaults", () => {
    const c = parseMonitorConfig(base(), {});
    expect(c.http).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(c.database!.usersUrl).toBe(c.database!.url);
    expect(c.history.retentionMs).toBe(7 * 86_400_000);
    // A primary and its replica (docs/ha.md), as DATABASE_URL takes them.
    const ha = "postgres://m@pg1:5432,pg2:5432/pesan?target_session_attrs=read-write";
    expect(parseMonitorConfig({ database: { url: ha } }, {}).database!.url).toBe(ha);
    expect(c.alerts).toEqual({ downAfter: 1, upAfter: 1, maxConcurrentActions: 8 });
  });

  test("a target gets the Linux default commands, intervals from defaults, thresholds merged", () => {
    const c = parseMonitorConfig(
      { ...base(), defaults: { interval: "2s" }, thresholds: { mem: { high: 70 } }, targets: [target({ services: ["nginx", { name: "x", command: "true", interval: 500 }], thresholds: { cpu: { high: 0 } } })] },
      {},
    );
    const t = c.targets[0]!;
    expect(t.metrics.cpu).toEqual({ command: DEFAULT_COMMANDS.cpu, intervalMs: 2000 });
    expect(t.services).toEqual([
      { name: "nginx", command: "systemctl is-active --quiet nginx", intervalMs: 2000 },
      { name: "x", command: "true", intervalMs: 500 },
    ]);
    expect(t.thresholds).toEqual({ cpu: { high: 0, hysteresis: 0 }, mem: { high: 70, hysteresis: 0 }, hdd: { high: 90, hysteresis: 2 } });
    expect(ssh(t).port).toBe(22);
    expect(ssh(t).privateKey.toString()).toBe(keyText);
  });
});

describe("a local target", () => {
  test("reads this machine: no SSH settings, built-in readings, the disk path made absolute", () => {
    const c = parseMonitorConfig({ ...base(), defaults: { interval: "2s", timeout: "1s" }, targets: [{ name: "here", local: true, disk: ".", services: ["nginx"] }] }, {});
    const t = c.targets[0]!;
    expect(t.kind).toBe("local");
    if (t.kind !== "local") return;
    expect(t.disk).toEqual([process.cwd()]);
    expect(t.metrics).toEqual({ cpu: { command: undefined, intervalMs: 2000 }, mem: { command: undefined, intervalMs: 2000 }, hdd: { command: undefined, intervalMs: 2000 } });
    // A service without a check is still a command, run here.
    expect(t.services).toEqual([{ name: "nginx", command: "systemctl is-active --quiet nginx", intervalMs: 2000 }]);
    expect(parseMonitorConfig({ ...base(), targets: [{ name: "here", local: true }] }, {}).targets[0]).toMatchObject({ kind: "local", disk: ["/"], timeoutMs: 5000 });
  });

  test("services as network checks, with their own timing, and replicas", () => {
    const c = parseMonitorConfig(
      {
        ...base(),
        defaults: { interval: "2s", timeout: "1s", forgetAfter: "1m" },
        targets: [
          {
            name: "here",
            local: true,
            services: [
              { name: "gw", udp: "udp-gateway:4999", replicas: true },
              { name: "api", http: "http://127.0.0.1:9090/healthz", interval: "5s", timeout: "2s", forgetAfter: 0 },
              { name: "ssh", tcp: "127.0.0.1:22" },
              { name: "pg", postgres: "postgres://u@db/x" },
              { name: "kv", redis: "redis://redis:6379" },
            ],
          },
        ],
      },
      {},
    );
    const timing = { intervalMs: 2000, timeoutMs: 1000, forgetAfterMs: 60_000 };
    expect(c.targets[0]!.services).toEqual([
      { name: "gw", intervalMs: 2000, replicas: true, check: { name: "gw", type: "udp", address: "udp-gateway:4999", ...timing } },
      { name: "api", intervalMs: 5000, replicas: false, check: { name: "api", type: "http", url: "http://127.0.0.1:9090/healthz", intervalMs: 5000, timeoutMs: 2000, forgetAfterMs: 0 } },
      { name: "ssh", intervalMs: 2000, replicas: false, check: { name: "ssh", type: "tcp", address: "127.0.0.1:22", ...timing } },
      { name: "pg", intervalMs: 2000, replicas: false, check: { name: "pg", type: "postgres", url: "postgres://u@db/x", ...timing } },
      { name: "kv", intervalMs: 2000, replicas: false, check: { name: "kv", type: "redis", url: "redis://redis:6379", ...timing } },
    ]);
  });

  test("an SSH target may have network-checked services too", () => {
    const c = parseMonitorConfig({ ...base(), targets: [target({ services: [{ name: "web", http: "http://10.0.0.11/" }] })] }, {});
    expect(c.targets[0]!.services[0]).toMatchObject({ name: "web", check: { type: "http", url: "http://10.0.0.11/" } });
  });
});

describe("secrets from the environment", () => {
  test("${ENV:NAME} anywhere in a string, ${ENV:NAME:-default}, numbers from strings", () => {
    const c = parseMonitorConfig(
      {
        database: { url: "postgres://monitor:${ENV:PGPASS}@db:5432/pesan" },
        http: { port: "${ENV:PORT:-9999}" },
        targets: [target({ privateKeyFile: undefined, privateKey: "${ENV:KEY}" })],
      },
      { PGPASS: "s3cret", KEY: keyText },
    );
    expect(c.database!.url).toBe("postgres://monitor:s3cret@db:5432/pesan");
    expect(c.http.port).toBe(9999);
    expect(ssh(c.targets[0]).privateKey.toString()).toBe(keyText);
  });

  test("an unset variable names the field and the variable", () => {
    expect(issues({ database: { url: "${ENV:NOPE_DB}" } })).toEqual(["database.url: environment variable NOPE_DB is not set (named by ${ENV:NOPE_DB})"]);
  });

  test("secrets are never echoed back in errors", () => {
    const out = issues({ ...base(), messaging: [{ name: "m", gateway: "gw:4999", user: "probe", password: "12345" }] });
    expect(out).toEqual(["messaging[0].password: must be 6 to 128 characters"]);
  });
});

describe("broken configs name the field and what was expected", () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["no database", {}, /^database: required \(expected object\)$/],
    ["database url of the wrong kind", { database: { url: "mysql://x" } }, /^database\.url: must be a postgres:\/\/ URL \(got "mysql:\/\/x"\)$/],
    ["several database hosts without read-write", { database: { url: "postgres://pg1,pg2/pesan" } }, /^database\.url: a URL with several hosts needs target_session_attrs=read-write/],
    ["misspelt top-level key", { ...base(), targetz: [] }, /^\(top level\): Unrecognized key: "targetz"$/],
    ["port not a number", { ...base(), http: { port: "eighty" } }, /^http\.port: Invalid input: expected number, received string \(got "eighty"\)$/],
    ["port out of range", { ...base(), http: { port: 70000 } }, /^http\.port: Too big: expected number to be <=65535 \(got 70000\)$/],
    ["bad duration", { ...base(), defaults: { interval: "often" } }, /^defaults\.interval: expected a duration.*\(got "often"\)$/],
    ["duration too short", { ...base(), defaults: { interval: "1ms" } }, /^defaults\.interval: must be between 50 ms and/],
    ["target without a host key", { ...base(), targets: [target({ hostKey: undefined })] }, /^targets\[0\]\.hostKey: required/],
    ["target with a bad host key", { ...base(), targets: [target({ hostKey: "SHA256:abc" })] }, /^targets\[0\]\.hostKey: a SHA256 fingerprint is/],
    ["target with both key kinds", { ...base(), targets: [target({ privateKey: "x" })] }, /^targets\[0\]\.privateKeyFile: give exactly one of privateKey or privateKeyFile$/],
    ["unreadable key file", { ...base(), targets: [target({ privateKeyFile: "/nonexistent/key" })] }, /^targets\[0\]\.privateKeyFile: cannot read \/nonexistent\/key: ENOENT/],
    ["not a key", { ...base(), targets: [target({ privateKeyFile: undefined, privateKey: "hello" })] }, /^targets\[0\]\.privateKey: expected an OpenSSH or PEM private key/],
    ["duplicate target names", { ...base(), targets: [target(), target()] }, /^targets\[1\]\.name: duplicate target name "web1"/],
    ["bad service name", { ...base(), targets: [target({ services: ["nginx; rm -rf /"] })] }, /^targets\[0\]\.services\[0\]\.name: must be 1-128 of/],
    ["unknown component type", { ...base(), components: [{ type: "ftp", name: "x" }] }, /^components\[0\]\.type: expected type to be one of "http", "udp", "tcp", "postgres", "redis" \(got "ftp"\)$/],
    ["component URL of the wrong kind", { ...base(), components: [{ type: "redis", name: "r", url: "http://x" }] }, /^components\[0\]\.url: must be a redis:\/\/ or rediss:\/\/ URL/],
    ["udp address without a port", { ...base(), components: [{ type: "udp", name: "g", address: "gateway" }] }, /^components\[0\]\.address: must be host:port/],
    ["messaging user name", { ...base(), messaging: [{ name: "m", gateway: "gw:1", user: "no spaces", password: "secret1" }] }, /^messaging\[0\]\.user: must be 1-32 of/],
    ["threshold not a number", { ...base(), thresholds: { cpu: { high: "lots" } } }, /^thresholds\.cpu\.high: Invalid input: expected number/],
    ["negative hysteresis", { ...base(), thresholds: { cpu: { high: 5, hysteresis: -1 } } }, /^thresholds\.cpu\.hysteresis: Too small/],
    ["action with neither command nor http", { ...base(), actions: [{ name: "a" }] }, /^actions\[0\]\.command: give exactly one of command or http$/],
    ["action on an unknown event", { ...base(), actions: [{ name: "a", on: ["boom"], command: "true" }] }, /^actions\[0\]\.on\[0\]: Invalid option: expected one of "down"\|"up"\|"threshold"\|"clear"/],
    ["misspelt key in a target", { ...base(), targets: [target({ hots: "x" })] }, /^targets\[0\]: Unrecognized key: "hots"$/],
    ["SSH settings on a local target", { ...base(), targets: [{ name: "here", local: true, host: "10.0.0.1" }] }, /^targets\[0\]: Unrecognized key: "host"$/],
    ["local not a boolean", { ...base(), targets: [{ name: "here", local: "yes" }] }, /^targets\[0\]\.local: local must be true \(this machine, no SSH\) or left out \(a host over SSH\)/],
    ["disk path that does not exist", { ...base(), targets: [{ name: "here", local: true, disk: "/nonexistent/disk" }] }, /^targets\[0\]\.disk: cannot read the filesystem of \/nonexistent\/disk: ENOENT/],
    ["one bad disk path of several", { ...base(), targets: [{ name: "here", local: true, disk: ["/", "/nonexistent"] }] }, /^targets\[0\]\.disk\[1\]: cannot read the filesystem of \/nonexistent/],
    ["two checks for one service", { ...base(), targets: [{ name: "here", local: true, services: [{ name: "x", http: "http://a/", tcp: "a:1" }] }] }, /^targets\[0\]\.services\[0\]\.tcp: give at most one of command, http, udp, tcp, postgres, redis \(got http and tcp\)/],
    ["replicas of a command", { ...base(), targets: [{ name: "here", local: true, services: [{ name: "x", command: "true", replicas: true }] }] }, /^targets\[0\]\.services\[0\]\.replicas: replicas needs a network check/],
    ["tcp service without a port", { ...base(), targets: [{ name: "here", local: true, services: [{ name: "x", tcp: "localhost" }] }] }, /^targets\[0\]\.services\[0\]\.tcp: must be host:port/],
    ["duplicate local target names", { ...base(), targets: [{ name: "here", local: true }, { name: "here", local: true }] }, /^targets\[1\]\.name: duplicate target name "here"/],
  ];
  test.each(cases)("%s", (_name, tree, expected) => {
    const out = issues(tree);
    expect(out).toEqual(expect.arrayContaining([expect.stringMatching(expected)]));
  });

  test("database may be left out only by a program that hands the monitor its own Db", () => {
    expect(issues({})).toEqual(["database: required (expected object)"]);
    expect(parseMonitorConfig({}, {}, { requireDatabase: false }).database).toBeUndefined();
  });

  test("every bad field is listed at once", () => {
    const out = issues({ database: { url: "x" }, http: { port: -1 }, log: { level: "loud" } });
    expect(out).toHaveLength(3);
  });
});

describe("the file", () => {
  test("YAML and JSON both load", () => {
    const yamlFile = join(dir, "m.yaml");
    writeFileSync(yamlFile, "database:\n  url: postgres://u@h/db\nhttp: { port: 8181 }\n");
    expect(loadMonitorConfig(yamlFile, {}).http.port).toBe(8181);
    const jsonFile = join(dir, "m.json");
    writeFileSync(jsonFile, JSON.stringify({ database: { url: "postgres://u@h/db" }, http: { port: 8282 } }));
    expect(loadMonitorConfig(jsonFile, {}).http.port).toBe(8282);
  });

  test("unreadable, unparsable, or not a mapping", () => {
    expect(() => loadMonitorConfig(join(dir, "missing.yaml"), {})).toThrow(/config file .*missing\.yaml: cannot read it/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "database:\n  url: [unclosed\n");
    expect(() => loadMonitorConfig(bad, {})).toThrow(/not valid YAML or JSON/);
    const list = join(dir, "list.yaml");
    writeFileSync(list, "- a\n- b\n");
    expect(() => loadMonitorConfig(list, {})).toThrow(/expected a mapping/);
  });

  test("monitor.compose.yaml is valid with only DATABASE_URL set", () => {
    const c = loadMonitorConfig(join(__dirname, "..", "..", "monitor.compose.yaml"), { DATABASE_URL: "postgres://postgres:pesan@postgres:5432/pesan" });
    expect(c.http).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(c.components.map((x) => `${x.type}:${x.name}`)).toEqual(["http:router", "http:gateway-health", "udp:gateway", "postgres:postgres", "redis:redis", "http:monitor-bot", "http:peer-sync", "udp:nginx"]);
  });

  test("the Compose configs watch their container as a local target, with every service of docker-compose.yml as replicas", () => {
    const compose = parse(readFileSync(join(__dirname, "..", "..", "..", "..", "docker-compose.yml"), "utf8"), { merge: true }) as { services: Record<string, unknown> };
    const env = { DATABASE_URL: "postgres://postgres:pesan@postgres:5432/pesan", TELEGRAM_BOT_TOKEN: "123456:AAH-example-token-0123456789", TELEGRAM_ADMIN_CODE: "example-admin-code" };
    const targets = ["monitor.compose.yaml", "monitor.compose-telegram.yaml"].map((f) => loadMonitorConfig(join(__dirname, "..", "..", f), env).targets);
    expect(targets[1]).toEqual(targets[0]);
    const [t] = targets[0]!;
    expect(t).toMatchObject({ kind: "local", name: "docker-host", disk: ["/"] });
    expect(t!.services.map((s) => s.name).sort()).toEqual(Object.keys(compose.services).sort());
    for (const s of t!.services) expect(s).toMatchObject({ replicas: true, check: { name: s.name } });
  });

  test("monitor.compose-ha.yaml watches every service of docker-compose.ha.yml but etcd (on a network the monitor does not join), each store node on its own, with the multi-host DATABASE_URL", () => {
    const parsed = parse(readFileSync(join(__dirname, "..", "..", "..", "..", "docker-compose.ha.yml"), "utf8"), { merge: true }) as { services: Record<string, { networks?: unknown }> };
    // The monitor is on the default network only; etcd only on stores.
    expect(parsed.services["monitor-bot"]!.networks).toBeUndefined();
    expect(parsed.services["etcd-1"]!.networks).toEqual(["stores"]);
    const compose = { services: Object.fromEntries(Object.entries(parsed.services).filter(([n]) => !n.startsWith("etcd-"))) };
    const c = loadMonitorConfig(join(__dirname, "..", "..", "monitor.compose-ha.yaml"), { DATABASE_URL: "postgres://postgres:pesan@pg-1:5432,pg-2:5432,pg-3:5432/pesan?target_session_attrs=read-write" });
    const [t] = c.targets;
    expect(t).toMatchObject({ kind: "local", name: "docker-host", disk: ["/"] });
    expect(t!.services.map((s) => s.name).sort()).toEqual(Object.keys(compose.services).sort());
    for (const s of t!.services) expect(s).toMatchObject({ replicas: true, check: { name: s.name } });
    // The components too: every service, none of them a redis+sentinel or multi-host URL.
    expect(c.components.map((x) => x.name).sort()).toEqual([...Object.keys(compose.services).filter((n) => n !== "router" && n !== "udp-gateway"), "router", "gateway", "gateway-health"].sort());
  });

  test("monitor.example.yaml is valid (with its key files and variables provided)", () => {
    const text = readFileSync(join(__dirname, "..", "..", "monitor.example.yaml"), "utf8");
    const tree = parse(text) as { targets: Array<Record<string, unknown>>; actions: unknown[] };
    for (const t of tree.targets) if ("privateKeyFile" in t) t.privateKeyFile = keyFile;
    const c = parseMonitorConfig(tree, {
      DATABASE_URL: "postgres://u@h/db",
      MONITOR_SSH_KEY: keyText,
      PROBE_PASSWORD: "probe-secret",
      SMS_KEY: "k",
      TELEGRAM_BOT_TOKEN: "123456:AAH-example-token-0123456789",
      TELEGRAM_ADMIN_CODE: "example-admin-code",
      TELEGRAM_WEBHOOK_SECRET: "example-webhook-secret-0123",
    });
    expect(c.targets.map((t) => `${t.kind}:${t.name}`)).toEqual(["ssh:web1", "ssh:db1", "local:monitor-host"]);
    expect(c.components).toHaveLength(5);
    expect(c.messaging[0]).toMatchObject({ name: "msg1", expiryMs: 30_000, timeoutMs: 3000 });
    expect(c.actions.map((a) => a.name)).toEqual(["log-everything", "sms", "restart-nginx"]);
    expect(c.telegram).toMatchObject({ mode: "polling", alertIntervalMs: 10_000, webhook: { path: "/telegram/webhook" } });
    expect(c.redis).toEqual({ url: "redis://127.0.0.1:6379", prefix: "pesan:monitor:" });
  });
});
