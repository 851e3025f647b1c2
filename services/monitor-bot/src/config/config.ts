/**
 * Loads the config file (YAML, or JSON, which is YAML too), fills `${ENV:NAME}` /
 * `${ENV:NAME:-default}` from the environment, validates it, and resolves it into what the
 * probes need (intervals filled from defaults, host key pins parsed, private keys read). Any
 * problem is a ConfigError listing every bad field with what was expected.
 */
import { readFileSync, statfsSync } from "node:fs";
import { hostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import ssh2 from "ssh2";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "@pesan/shared/errors";
import { configSchema, type RawConfig, type ThresholdRule } from "./config-schema.ts";
import { parseHostKeyPin, type HostKeyPin } from "../probes/hostkey.ts";
import type { SshTarget } from "../probes/ssh.ts";
import { DEFAULT_FACT_COMMANDS, type FactCommands } from "../probes/facts.ts";
import type { MaintenanceWindow } from "../alerting/suppression.ts";

export type { ThresholdRule } from "./config-schema.ts";
export type Env = Record<string, string | undefined>;
export type HostMetric = "cpu" | "mem" | "hdd";
export const HOST_METRICS: readonly HostMetric[] = ["cpu", "mem", "hdd"];

/** Linux defaults; a command printing one number is read as the percentage instead. */
export const DEFAULT_COMMANDS = {
  cpu: "grep '^cpu ' /proc/stat; sleep 1; grep '^cpu ' /proc/stat; cat /proc/loadavg",
  mem: "grep -E '^(MemTotal|MemAvailable|MemFree|Buffers|Cached):' /proc/meminfo",
  hdd: "LC_ALL=C df -P /",
  service: "systemctl is-active --quiet {service}",
} as const;

export const DEFAULT_THRESHOLDS: Record<HostMetric, ThresholdRule> = {
  cpu: { high: 90, hysteresis: 5 },
  mem: { high: 90, hysteresis: 5 },
  hdd: { high: 90, hysteresis: 2 },
};

export interface ScheduledCommand {
  command: string;
  intervalMs: number;
}

interface ProbeTiming {
  name: string;
  intervalMs: number;
  timeoutMs: number;
  forgetAfterMs: number;
}
export type ComponentConfig =
  | (ProbeTiming & { type: "http"; url: string })
  | (ProbeTiming & { type: "udp"; address: string })
  | (ProbeTiming & { type: "tcp"; address: string })
  | (ProbeTiming & { type: "postgres"; url: string })
  | (ProbeTiming & { type: "redis"; url: string });
export type ComponentType = ComponentConfig["type"];

/** A service whose status is a command's exit code (0 = On), run on the target's host. */
export interface CommandService extends ScheduledCommand {
  name: string;
}

/**
 * A service checked from the monitor over the network, as a component is (`check.name` is the
 * service's name). With replicas, each address the check's host resolves to is a service of
 * its own, `<name>@<address>`; without, the service is On when any of them passes.
 */
export interface NetworkService {
  name: string;
  intervalMs: number;
  check: ComponentConfig;
  replicas: boolean;
}

export type ServiceConfig = CommandService | NetworkService;

interface TargetBase {
  name: string;
  timeoutMs: number;
  /** The slowest probe interval. */
  intervalMs: number;
  services: ServiceConfig[];
  thresholds: Partial<Record<HostMetric, ThresholdRule>>;
}

/** A host over SSH: what the connection needs (SshTarget), plus what to run over it. */
export interface SshTargetConfig extends SshTarget, TargetBase {
  kind: "ssh";
  metrics: Record<HostMetric, ScheduledCommand>;
  /** The processor and system facts (/cpu, /system): what to run, and how often. */
  facts: { commands: FactCommands; intervalMs: number };
}

/**
 * This machine, no SSH. A metric without a command is read by the monitor itself (/proc/stat,
 * /proc/meminfo, statfs of the disk paths); one with a command runs it here through /bin/sh.
 */
export interface LocalTargetConfig extends TargetBase {
  kind: "local";
  /** Absolute paths; the fullest of their filesystems is the disk figure. */
  disk: string[];
  metrics: Record<HostMetric, { command: string | undefined; intervalMs: number }>;
  /** The facts (/cpu, /system): a fact without a command is read here directly, as a metric is. */
  facts: { commands: Partial<FactCommands>; intervalMs: number };
}

export type TargetConfig = SshTargetConfig | LocalTargetConfig;

/** The host name as a config name (A-Z a-z 0-9 _ . -): the default instance, and the embedded mode's local target. */
export function defaultHostName(fallback = "localhost"): string {
  return hostname().replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 64) || fallback;
}

export interface MessagingConfig {
  name: string;
  gateway: string;
  user: string;
  password: string;
  intervalMs: number;
  timeoutMs: number;
  expiryMs: number;
  thresholds: { delay?: ThresholdRule };
}

export type ActionConfig = RawConfig["actions"][number] & { timeoutMs: number };

export interface TelegramConfig {
  token: string;
  adminCode: string;
  alertIntervalMs: number;
  mode: "polling" | "webhook";
  /** Whole seconds, as getUpdates takes it. */
  pollTimeoutSeconds: number;
  webhook: { path: string; secret: string; url: string | undefined } | undefined;
  apiRoot: string | undefined;
  sendRate: number;
  leaseTtlMs: number;
}

export interface MonitorConfig {
  instance: string;
  http: { host: string; port: number };
  logLevel: RawConfig["log"]["level"];
  /** Undefined only when parsed with requireDatabase: false (an embedding program supplies it). */
  database: { url: string; usersUrl: string; poolMax: number } | undefined;
  history: { retentionMs: number; eventRetentionMs: number; pruneEveryMs: number; flushEveryMs: number };
  targets: TargetConfig[];
  components: ComponentConfig[];
  messaging: MessagingConfig[];
  userStats: { enabled: boolean; intervalMs: number };
  actions: ActionConfig[];
  maintenance: MaintenanceWindow[];
  alerts: RawConfig["alerts"];
  redis: { url: string; prefix: string } | undefined;
  telegram: TelegramConfig | undefined;
}

const ENV_REF = /\$\{ENV:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${ENV:NAME}` (and `${ENV:NAME:-default}`) in every string of the tree. */
export function interpolateEnv(tree: unknown, env: Env, issues: string[], path: (string | number)[] = []): unknown {
  if (typeof tree === "string") {
    return tree.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== "") return v;
      if (fallback !== undefined) return fallback;
      issues.push(`${formatPath(path)}: environment variable ${name} is not set (named by \${ENV:${name}})`);
      return "";
    });
  }
  if (Array.isArray(tree)) return tree.map((v, i) => interpolateEnv(v, env, issues, [...path, i]));
  if (tree !== null && typeof tree === "object") {
    return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, interpolateEnv(v, env, issues, [...path, k])]));
  }
  return tree;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : `${out ? "." : ""}${String(p)}`;
  return out || "(top level)";
}

const SECRET_KEY = /pass|secret|token|key|headers|code/i;

function valueAt(tree: unknown, path: readonly PropertyKey[]): unknown {
  let v = tree;
  for (const p of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

export interface ParseOptions {
  /** false: `database` may be left out, for a program that hands the monitor its own Db. */
  requireDatabase?: boolean;
}

/** Validates an already parsed tree (what the file held). */
export function parseMonitorConfig(tree: unknown, env: Env = process.env, opts: ParseOptions = {}): MonitorConfig {
  const issues: string[] = [];
  const interpolated = interpolateEnv(tree ?? {}, env, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  const result = configSchema.safeParse(interpolated);
  const missingDb = (opts.requireDatabase ?? true) && valueAt(interpolated, ["database"]) === undefined ? ["database: required (expected object)"] : [];
  if (!result.success || missingDb.length > 0) {
    throw new ConfigError([
      ...missingDb,
      ...(result.error?.issues ?? []).map((i) => {
        const got = valueAt(interpolated, i.path);
        const secret = i.path.some((p) => typeof p === "string" && SECRET_KEY.test(p));
        const show = !secret && got !== undefined && (typeof got !== "object" || got === null) && String(got).length <= 80;
        if (got === undefined && i.code === "invalid_type") return `${formatPath(i.path)}: required (expected ${i.expected})`;
        if (got === undefined && i.code === "invalid_union") return `${formatPath(i.path)}: required (${i.message})`;
        return `${formatPath(i.path)}: ${i.message}${show ? ` (got ${JSON.stringify(got)})` : ""}`;
      }),
    ]);
  }
  return resolve(result.data, issues);
}

export function loadMonitorConfig(file: string, env: Env = process.env, opts: ParseOptions = {}): MonitorConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError([`config file ${file}: cannot read it: ${(e as Error).message}`]);
  }
  let tree: unknown;
  try {
    tree = parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError([`config file ${file}: not valid YAML or JSON: ${(e as Error).message.split("\n")[0]}`]);
  }
  if (tree !== null && tree !== undefined && (typeof tree !== "object" || Array.isArray(tree))) {
    throw new ConfigError([`config file ${file}: expected a mapping of settings (database:, targets:, ...) at the top level`]);
  }
  return parseMonitorConfig(tree, env, opts);
}

function resolve(c: RawConfig, issues: string[]): MonitorConfig {
  const d = c.defaults;
  const targets = c.targets.map((t, i): TargetConfig => {
    const interval = t.interval ?? d.interval;
    const timeoutMs = t.timeout ?? d.timeout;
    const serviceTemplate = t.commands.service ?? DEFAULT_COMMANDS.service;
    const services = t.services.map((s): ServiceConfig => {
      const intervalMs = s.interval ?? t.intervals.service ?? interval;
      const check = networkCheck(s, intervalMs, s.timeout ?? timeoutMs, s.forgetAfter ?? d.forgetAfter);
      if (check) return { name: s.name, intervalMs, check, replicas: s.replicas };
      return { name: s.name, command: s.command ?? serviceTemplate.replaceAll("{service}", s.name), intervalMs };
    });
    const thresholds = { ...DEFAULT_THRESHOLDS, ...c.thresholds, ...t.thresholds };
    const slowest = (metrics: Record<HostMetric, { intervalMs: number }>) => Math.max(...[...Object.values(metrics), ...services].map((m) => m.intervalMs));
    if (t.local === true) {
      const metric = (m: HostMetric) => ({ command: t.commands[m], intervalMs: t.intervals[m] ?? interval });
      const metrics = { cpu: metric("cpu"), mem: metric("mem"), hdd: metric("hdd") };
      const facts = { commands: { ...t.facts.commands }, intervalMs: t.facts.interval };
      return { kind: "local", name: t.name, disk: diskPaths(t.disk, i, issues), timeoutMs, intervalMs: slowest(metrics), metrics, services, thresholds, facts };
    }
    const metric = (m: HostMetric): ScheduledCommand => ({ command: t.commands[m] ?? DEFAULT_COMMANDS[m], intervalMs: t.intervals[m] ?? interval });
    const metrics = { cpu: metric("cpu"), mem: metric("mem"), hdd: metric("hdd") };
    return {
      kind: "ssh",
      name: t.name,
      host: t.host,
      port: t.port,
      username: t.username,
      privateKey: readKey(t, i, issues),
      passphrase: t.passphrase,
      hostKeys: t.hostKey.map((s) => parseHostKeyPin(s) as HostKeyPin),
      timeoutMs,
      intervalMs: slowest(metrics),
      maxChannels: t.maxChannels,
      metrics,
      services,
      thresholds,
      facts: { commands: { ...DEFAULT_FACT_COMMANDS, ...t.facts.commands }, intervalMs: t.facts.interval },
    };
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return {
    instance: c.instance ?? defaultHostName("monitor"),
    http: c.http,
    logLevel: c.log.level,
    database: c.database && { url: c.database.url, usersUrl: c.database.usersUrl ?? c.database.url, poolMax: c.database.poolMax },
    history: {
      retentionMs: c.history.retention,
      eventRetentionMs: c.history.eventRetention,
      pruneEveryMs: c.history.pruneEvery,
      flushEveryMs: c.history.flushEvery,
    },
    targets,
    components: c.components.map((p) => {
      const { interval, timeout, forgetAfter, ...rest } = p;
      return { ...rest, intervalMs: interval ?? d.interval, timeoutMs: timeout ?? d.timeout, forgetAfterMs: forgetAfter ?? d.forgetAfter };
    }),
    messaging: c.messaging.map((m) => ({
      name: m.name,
      gateway: m.gateway,
      user: m.user,
      password: m.password,
      intervalMs: m.interval ?? d.interval,
      timeoutMs: m.timeout ?? d.timeout,
      expiryMs: m.expiry,
      thresholds: m.thresholds ?? {},
    })),
    userStats: { enabled: c.userStats.enabled, intervalMs: c.userStats.interval },
    actions: c.actions.map((a) => ({ ...a, timeoutMs: a.timeout })),
    maintenance: c.maintenance.map((m): MaintenanceWindow => {
      if (m.weekly) {
        const [h, min] = m.weekly.at.split(":").map(Number);
        return { name: m.name, components: m.components, kind: "weekly", day: m.weekly.day, minuteOfDay: h! * 60 + min!, durationMs: m.weekly.duration };
      }
      return { name: m.name, components: m.components, kind: "once", from: m.from!, to: m.to! };
    }),
    alerts: c.alerts,
    redis: c.redis,
    telegram: c.telegram && resolveTelegram(c.telegram),
  };
}

function resolveTelegram(t: NonNullable<RawConfig["telegram"]>): TelegramConfig {
  return {
    token: t.token,
    adminCode: t.adminCode,
    alertIntervalMs: t.alertInterval,
    mode: t.mode,
    pollTimeoutSeconds: Math.round(t.pollTimeout / 1000),
    webhook: t.webhook && { path: t.webhook.path, secret: t.webhook.secret, url: t.webhook.url },
    apiRoot: t.apiRoot,
    sendRate: t.sendRate,
    // Shorter than the alert interval, so a dead leader's successor sends the next reminder on time.
    leaseTtlMs: t.leaseTtl ?? Math.max(100, Math.round(t.alertInterval * 0.75)),
  };
}

type RawService = RawConfig["targets"][number]["services"][number];

/** The service's network check as a component config, or undefined for a command service. */
function networkCheck(s: RawService, intervalMs: number, timeoutMs: number, forgetAfterMs: number): ComponentConfig | undefined {
  const timing = { name: s.name, intervalMs, timeoutMs, forgetAfterMs };
  if (s.http !== undefined) return { ...timing, type: "http", url: s.http };
  if (s.udp !== undefined) return { ...timing, type: "udp", address: s.udp };
  if (s.tcp !== undefined) return { ...timing, type: "tcp", address: s.tcp };
  if (s.postgres !== undefined) return { ...timing, type: "postgres", url: s.postgres };
  if (s.redis !== undefined) return { ...timing, type: "redis", url: s.redis };
  return undefined;
}

/** Absolute, and checked now (statfs), so a mistyped path stops the start rather than every disk probe. */
function diskPaths(paths: string[], i: number, issues: string[]): string[] {
  return paths.map((p, j) => {
    const abs = resolvePath(p);
    try {
      statfsSync(abs);
    } catch (e) {
      issues.push(`targets[${i}].disk${paths.length > 1 ? `[${j}]` : ""}: cannot read the filesystem of ${abs}: ${(e as Error).message}`);
    }
    return abs;
  });
}

/** Reads and checks the private key now, so a bad key stops the start rather than every probe. */
function readKey(t: Extract<RawConfig["targets"][number], { host: string }>, i: number, issues: string[]): Buffer {
  const field = `targets[${i}].${t.privateKey !== undefined ? "privateKey" : "privateKeyFile"}`;
  let key: Buffer;
  if (t.privateKey !== undefined) key = Buffer.from(t.privateKey.replace(/\\n/g, "\n"));
  else {
    try {
      key = readFileSync(t.privateKeyFile!);
    } catch (e) {
      issues.push(`${field}: cannot read ${t.privateKeyFile}: ${(e as Error).message}`);
      return Buffer.alloc(0);
    }
  }
  const parsed = ssh2.utils.parseKey(key, t.passphrase);
  if (parsed instanceof Error) {
    issues.push(`${field}: expected an OpenSSH or PEM private key${t.passphrase === undefined ? " (encrypted keys need passphrase)" : ""}: ${parsed.message}`);
  } else if (Array.isArray(parsed) || !parsed.isPrivateKey()) {
    issues.push(`${field}: expected one private key, not a public key or several keys`);
  }
  return key;
}
