/**
 * The monitor's config file, as a zod schema. Objects are strict, so a misspelt key is an error
 * that names it rather than a setting silently ignored. Durations are milliseconds or `10s`-style
 * strings; numbers may also come as numeric strings, since `${ENV:X}` always yields text.
 */
import { z } from "zod";
import { HOST_PORT_RE, parseHostPort, USER_NAME_RE, USER_NAME_RULE } from "@pesan/shared/names";
import { pgUrl } from "@pesan/shared/config";
import { parseDuration } from "./duration.ts";
import { parseHostKeyPin } from "../probes/hostkey.ts";
import { WEEKDAYS } from "../alerting/suppression.ts";

export const EVENT_KINDS = ["down", "up", "threshold", "clear"] as const;

const name = () => z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 _ . -");

const num = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v), z.number().min(min).max(max));
const int = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v), z.number().int().min(min).max(max));

const duration = (minMs: number, maxMs: number) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: "expected a duration: milliseconds, or a number with ms, s, m, h or d (e.g. 10s)" });
      return z.NEVER;
    }
    if (ms < minMs || ms > maxMs) {
      ctx.addIssue({ code: "custom", message: `must be between ${minMs} ms and ${maxMs} ms (got ${ms} ms)` });
      return z.NEVER;
    }
    return ms;
  });

const hostPort = () =>
  z
    .string()
    .regex(HOST_PORT_RE, { message: "must be host:port (IPv6 in brackets)", abort: true })
    // 1-65535, not the service configuration's 0-65535: these are targets the monitor connects to.
    .refine((s) => {
      const p = parseHostPort(s)?.port ?? NaN;
      return p >= 1 && p <= 65535;
    }, "port must be 1-65535");

const urlWith = (schemes: string[], what: string) =>
  z.string().refine((s) => {
    try {
      return schemes.includes(new URL(s).protocol);
    } catch {
      return false;
    }
  }, `must be a ${what} URL`);

const thresholdRule = z.strictObject({
  /** Fires when a sample is >= high. */
  high: num(-1e12, 1e12),
  /** Clears when a sample is < high - hysteresis. */
  hysteresis: num(0, 1e12).default(0),
});
export type ThresholdRule = z.infer<typeof thresholdRule>;

const hostThresholds = z.strictObject({ cpu: thresholdRule.optional(), mem: thresholdRule.optional(), hdd: thresholdRule.optional() });

const hostKey = z
  .union([z.string(), z.array(z.string()).min(1)], { error: "expected a known_hosts line or a SHA256 fingerprint, or a list of them" })
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .superRefine((list, ctx) => {
    list.forEach((s, i) => {
      const pin = parseHostKeyPin(s);
      if (typeof pin === "string") ctx.addIssue({ code: "custom", message: pin, path: list.length > 1 ? [i] : [] });
    });
  });

const serviceName = () => z.string().regex(/^[A-Za-z0-9_.@:-]{1,128}$/, "must be 1-128 of A-Z a-z 0-9 _ . @ : - (a systemd unit name)");

/** The network checks a service may use instead of a command: the component probes' vocabulary. */
export const SERVICE_CHECKS = ["http", "udp", "tcp", "postgres", "redis"] as const;

/** A bare name is short for { name } (a systemd unit checked by commands.service). */
const service = z.preprocess(
  (v) => (typeof v === "string" ? { name: v } : v),
  z
    .strictObject({
      name: serviceName(),
      /** Exit code 0 means On. Default: the target's commands.service with {service} replaced. */
      command: z.string().min(1).optional(),
      /** Or a check from the monitor itself, no command on the host (as the components do). */
      http: urlWith(["http:", "https:"], "http:// or https://").optional(),
      udp: hostPort().optional(),
      tcp: hostPort().optional(),
      postgres: urlWith(["postgres:", "postgresql:"], "postgres://").optional(),
      redis: urlWith(["redis:", "rediss:"], "redis:// or rediss://").optional(),
      /** A network check of a name: one service per address it resolves to, `<name>@<address>`. */
      replicas: z.boolean().default(false),
      interval: duration(50, 86_400_000).optional(),
      timeout: duration(50, 600_000).optional(),
      forgetAfter: duration(0, 30 * 86_400_000).optional(),
    })
    .superRefine((s, ctx) => {
      const given = (["command", ...SERVICE_CHECKS] as const).filter((k) => s[k] !== undefined);
      if (given.length > 1) ctx.addIssue({ code: "custom", message: `give at most one of command, ${SERVICE_CHECKS.join(", ")} (got ${given.join(" and ")})`, path: [given[1]!] });
      if (s.replicas && !SERVICE_CHECKS.some((k) => s[k] !== undefined)) {
        ctx.addIssue({ code: "custom", message: `replicas needs a network check (${SERVICE_CHECKS.join(", ")}) whose host name resolves to the replicas`, path: ["replicas"] });
      }
    }),
);

const commands = z
  .strictObject({
    cpu: z.string().min(1).optional(),
    mem: z.string().min(1).optional(),
    hdd: z.string().min(1).optional(),
    service: z.string().min(1).optional(),
  })
  .default({});

const intervals = z
  .strictObject({
    cpu: duration(50, 86_400_000).optional(),
    mem: duration(50, 86_400_000).optional(),
    hdd: duration(50, 86_400_000).optional(),
    service: duration(50, 86_400_000).optional(),
  })
  .default({});

/**
 * The processor and installed system for /cpu and /system: read rarely, they seldom change.
 * Over SSH a fact without a command runs the Linux default; on a local target it is read here
 * directly (the same files, uname's fields), and a command given runs here through /bin/sh.
 */
const facts = z
  .strictObject({
    commands: z
      .strictObject({
        cpuinfo: z.string().min(1).optional(),
        loadavg: z.string().min(1).optional(),
        osRelease: z.string().min(1).optional(),
        kernel: z.string().min(1).optional(),
        uptime: z.string().min(1).optional(),
      })
      .default({}),
    interval: duration(1000, 86_400_000).default(30_000),
  })
  .default({ commands: {}, interval: 30_000 });

/**
 * This machine, read without SSH: /proc/stat, /proc/meminfo and statfs of `disk`. A command
 * given in commands runs here through /bin/sh instead.
 */
const localTarget = z.strictObject({
  name: name(),
  local: z.literal(true, { error: "must be true (a local target), or leave it out for an SSH target" }),
  /** The paths whose filesystems make the disk figure (the fullest counts), like `df -P` of them. */
  disk: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: "expected a path or a list of paths" })
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .default(["/"]),
  interval: duration(50, 86_400_000).optional(),
  timeout: duration(50, 600_000).optional(),
  commands,
  intervals,
  services: z.array(service).default([]),
  thresholds: hostThresholds.optional(),
  facts,
});

const sshTarget = z
  .strictObject({
    name: name(),
    local: z.literal(false).optional(),
    host: z.string().min(1),
    port: int(1, 65535).default(22),
    username: z.string().min(1),
    /** The private key itself (OpenSSH or PEM text), e.g. "${ENV:MONITOR_SSH_KEY}". */
    privateKey: z.string().min(1).optional(),
    privateKeyFile: z.string().min(1).optional(),
    passphrase: z.string().optional(),
    /** A known_hosts line or a SHA256 fingerprint (or a list of them: any one may match). */
    hostKey,
    interval: duration(50, 86_400_000).optional(),
    timeout: duration(50, 600_000).optional(),
    /** Commands run at once over the one connection (sshd's MaxSessions is 10 by default). */
    maxChannels: int(1, 64).default(4),
    commands,
    intervals,
    services: z.array(service).default([]),
    thresholds: hostThresholds.optional(),
    facts,
  })
  .superRefine((t, ctx) => {
    if ((t.privateKey === undefined) === (t.privateKeyFile === undefined)) {
      ctx.addIssue({ code: "custom", message: "give exactly one of privateKey or privateKeyFile", path: ["privateKeyFile"] });
    }
  });

/** `local: true` picks the local schema, so its errors name local settings, not missing SSH ones. */
const target = z.discriminatedUnion("local", [localTarget, sshTarget], { error: () => "local must be true (this machine, no SSH) or left out (a host over SSH)" });

const probeTiming = {
  interval: duration(50, 86_400_000).optional(),
  timeout: duration(50, 600_000).optional(),
  /** An address that stopped resolving is still probed (and so shown down) this long. */
  forgetAfter: duration(0, 30 * 86_400_000).optional(),
};

const component = z.discriminatedUnion(
  "type",
  [
    z.strictObject({ type: z.literal("http"), name: name(), url: urlWith(["http:", "https:"], "http:// or https://"), ...probeTiming }),
    z.strictObject({ type: z.literal("udp"), name: name(), address: hostPort(), ...probeTiming }),
    z.strictObject({ type: z.literal("tcp"), name: name(), address: hostPort(), ...probeTiming }),
    z.strictObject({ type: z.literal("postgres"), name: name(), url: urlWith(["postgres:", "postgresql:"], "postgres://"), ...probeTiming }),
    z.strictObject({ type: z.literal("redis"), name: name(), url: urlWith(["redis:", "rediss:"], "redis:// or rediss://"), ...probeTiming }),
  ],
  { error: () => 'expected type to be one of "http", "udp", "tcp", "postgres", "redis"' },
);

const messaging = z.strictObject({
  name: name(),
  /** The gateway (or the nginx in front of them) as host:port. */
  gateway: hostPort(),
  user: z.string().regex(USER_NAME_RE, `must be ${USER_NAME_RULE} (a pesan user name)`),
  password: z.string().min(6, "must be 6 to 128 characters").max(128, "must be 6 to 128 characters"),
  interval: duration(50, 86_400_000).optional(),
  /** A reply to LOGIN or SEND must come within this. */
  timeout: duration(50, 600_000).optional(),
  /** The probe's own MSG must come back within this, or the probe is EXPIRED. */
  expiry: duration(50, 600_000).default(30_000),
  thresholds: z.strictObject({ delay: thresholdRule.optional() }).optional(),
});

const action = z
  .strictObject({
    name: name(),
    on: z.array(z.enum(EVENT_KINDS)).min(1).default([...EVENT_KINDS]),
    /** Component patterns; `*` matches anything (e.g. "host:*", "service:web1/*"). */
    components: z.array(z.string().min(1)).min(1).default(["*"]),
    /** Run by /bin/sh -c with the event in PESAN_* environment variables. */
    command: z.string().min(1).optional(),
    http: z
      .strictObject({
        url: urlWith(["http:", "https:"], "http:// or https://"),
        method: z.enum(["GET", "POST"]).default("POST"),
        headers: z.record(z.string(), z.string()).default({}),
      })
      .optional(),
    timeout: duration(50, 600_000).default(30_000),
  })
  .superRefine((a, ctx) => {
    if ((a.command === undefined) === (a.http === undefined)) ctx.addIssue({ code: "custom", message: "give exactly one of command or http", path: ["command"] });
  });

/** secret_token of setWebhook: Telegram accepts only these characters. */
const webhookSecret = () => z.string().regex(/^[A-Za-z0-9_-]{16,256}$/, "must be 16-256 of A-Z a-z 0-9 _ - (Telegram's secret_token alphabet)");

const telegram = z
  .strictObject({
    /** From BotFather, e.g. "${ENV:TELEGRAM_BOT_TOKEN}". */
    token: z.string().regex(/^\d{1,20}:[A-Za-z0-9_-]{20,200}$/, "must be a bot token as BotFather gives it (digits, a colon, then 20+ of A-Z a-z 0-9 _ -)"),
    /** Sent as `/admin <code>` to become an admin. */
    adminCode: z.string().min(8, "must be at least 8 characters, so it cannot be guessed").max(256),
    /** How often a member is reminded of a component that is still down. */
    alertInterval: duration(100, 86_400_000).default(10_000),
    mode: z.enum(["polling", "webhook"], { error: 'expected "polling" or "webhook"' }).default("polling"),
    /** Seconds a getUpdates call waits on Telegram's side (long polling). */
    pollTimeout: duration(0, 50_000).default(30_000),
    webhook: z
      .strictObject({
        /** The route on this monitor's HTTP server that nginx forwards Telegram's POSTs to. */
        path: z.string().regex(/^\/[A-Za-z0-9_./-]{1,200}$/, "must be a path such as /telegram/webhook").default("/telegram/webhook"),
        /** Checked against the X-Telegram-Bot-Api-Secret-Token header of every POST. */
        secret: webhookSecret(),
        /** The public https URL Telegram posts to; when set, setWebhook registers it at start. */
        url: urlWith(["https:", "http:"], "https://").optional(),
      })
      .optional(),
    /** A self-hosted Bot API server (or a test double); default https://api.telegram.org. */
    apiRoot: urlWith(["http:", "https:"], "http:// or https://").optional(),
    /** Messages per second to Telegram, all chats together (Telegram allows about 30). */
    sendRate: num(1, 1000).default(25),
    /** How long the alert leader's Redis lease lasts unrenewed; default 3/4 of alertInterval. */
    leaseTtl: duration(100, 600_000).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.mode === "webhook" && !t.webhook) ctx.addIssue({ code: "custom", message: "mode webhook needs webhook: { secret } (and usually url)", path: ["webhook"] });
  });

const isoTime = () =>
  z
    .string()
    .regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/, "must be an ISO-8601 time with a zone, e.g. 2026-12-24T22:00:00Z")
    .refine((s) => Number.isFinite(Date.parse(s)), "is not a real date")
    .transform((s) => new Date(s));

/**
 * A maintenance window: alerts about its components are held while it lasts. Either one-off
 * (from, to) or weekly (a day, a UTC time of day and a duration).
 */
const maintenance = z
  .strictObject({
    name: name().optional(),
    /** Component patterns as in actions; `*` matches anything. */
    components: z.array(z.string().min(1)).min(1).default(["*"]),
    from: isoTime().optional(),
    to: isoTime().optional(),
    weekly: z
      .strictObject({
        day: z.enum(WEEKDAYS, { error: `expected one of ${WEEKDAYS.join(", ")}` }),
        /** UTC, HH:MM. */
        at: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "must be HH:MM (UTC, 00:00-23:59)"),
        duration: duration(60_000, 7 * 86_400_000),
      })
      .optional(),
  })
  .superRefine((m, ctx) => {
    const oneOff = m.from !== undefined || m.to !== undefined;
    if (oneOff === (m.weekly !== undefined)) {
      ctx.addIssue({ code: "custom", message: "give either from and to (one-off) or weekly: { day, at, duration }", path: [oneOff ? "weekly" : "from"] });
      return;
    }
    if (oneOff && (m.from === undefined || m.to === undefined)) ctx.addIssue({ code: "custom", message: "a one-off window needs both from and to", path: [m.from === undefined ? "from" : "to"] });
    else if (oneOff && m.to! <= m.from!) ctx.addIssue({ code: "custom", message: "must be later than from", path: ["to"] });
  });

/** Names must be unique within a list: they are ids in the API, the metrics and the history. */
function uniqueNames<T>(list: T[], key: (t: T) => string, ctx: z.RefinementCtx, path: (string | number)[], what: string): void {
  const seen = new Set<string>();
  list.forEach((item, i) => {
    const k = key(item);
    if (seen.has(k)) ctx.addIssue({ code: "custom", message: `duplicate ${what} name "${k}"`, path: [...path, i, "name"] });
    seen.add(k);
  });
}

export const configSchema = z
  .strictObject({
    /** This monitor's id in the history tables (default: the host name). */
    instance: name().optional(),
    http: z.strictObject({ host: z.string().min(1).default("127.0.0.1"), port: int(0, 65535).default(8080) }).default({ host: "127.0.0.1", port: 8080 }),
    log: z
      .strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info") })
      .default({ level: "info" }),
    /** Required, except when the program embedding the monitor hands it a database. */
    database: z
      .strictObject({
        /** Where the history goes (monitor_* tables, own migrations); several hosts as DATABASE_URL takes them (docs/ha.md). */
        url: pgUrl(),
        /** The messaging database whose users table the statistics count; default: url. */
        usersUrl: pgUrl().optional(),
        poolMax: int(1, 100).default(4),
      })
      .optional(),
    history: z
      .strictObject({
        retention: duration(60_000, 3650 * 86_400_000).default(7 * 86_400_000),
        eventRetention: duration(60_000, 3650 * 86_400_000).default(90 * 86_400_000),
        pruneEvery: duration(1000, 86_400_000).default(3_600_000),
        flushEvery: duration(10, 60_000).default(1000),
      })
      .default({ retention: 7 * 86_400_000, eventRetention: 90 * 86_400_000, pruneEvery: 3_600_000, flushEvery: 1000 }),
    defaults: z
      .strictObject({
        interval: duration(50, 86_400_000).default(10_000),
        timeout: duration(50, 600_000).default(5000),
        forgetAfter: duration(0, 30 * 86_400_000).default(600_000),
      })
      .default({ interval: 10_000, timeout: 5000, forgetAfter: 600_000 }),
    thresholds: hostThresholds.default({}),
    targets: z.array(target).default([]),
    components: z.array(component).default([]),
    messaging: z.array(messaging).default([]),
    userStats: z
      .strictObject({ enabled: z.boolean().default(true), interval: duration(100, 86_400_000).default(60_000) })
      .default({ enabled: true, interval: 60_000 }),
    actions: z.array(action).default([]),
    /** Times when alerts about some components are held (planned work). */
    maintenance: z.array(maintenance).default([]),
    /** Shared by the replicas: the alert leader's lease, Telegram update de-duplication. */
    redis: z
      .strictObject({
        url: urlWith(["redis:", "rediss:"], "redis:// or rediss://"),
        prefix: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, "must be 1-100 of A-Z a-z 0-9 _ . : -").default("pesan:monitor:"),
      })
      .optional(),
    /** The Telegram bot; without this section there is no bot. */
    telegram: telegram.optional(),
    alerts: z
      .strictObject({
        /** Consecutive failed checks before a component counts as down. */
        downAfter: int(1, 1000).default(1),
        /** Consecutive good checks before a down component counts as up again. */
        upAfter: int(1, 1000).default(1),
        /** Actions running at once; more wait in a queue of at most 1000. */
        maxConcurrentActions: int(1, 256).default(8),
      })
      .default({ downAfter: 1, upAfter: 1, maxConcurrentActions: 8 }),
  })
  .superRefine((c, ctx) => {
    uniqueNames(c.targets, (t) => t.name, ctx, ["targets"], "target");
    uniqueNames(c.components, (t) => `${t.type}:${t.name}`, ctx, ["components"], "component");
    uniqueNames(c.messaging, (t) => t.name, ctx, ["messaging"], "messaging probe");
    uniqueNames(c.actions, (t) => t.name, ctx, ["actions"], "action");
    c.targets.forEach((t, i) => uniqueNames(t.services, (s) => s.name, ctx, ["targets", i, "services"], "service"));
  });

export type RawConfig = z.infer<typeof configSchema>;
