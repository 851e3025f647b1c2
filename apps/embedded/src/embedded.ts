/**
 * Gateway and router in one process. Without DATABASE_URL it keeps its data in PGlite
 * (Postgres in WASM) under DATA_DIR; without REDIS_URL the bus is in memory. Either way the
 * same Gateway and Router classes run, so embedded and clustered modes share every line of
 * business logic.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { MemoryBus, RedisBus, type Bus } from "@pesan/shared/bus";
import { loadConfig, port, type Env } from "@pesan/shared/config";
import { migrate, openDb, type Db } from "@pesan/shared/db";
import { createLogger, createRegistry, dependencyChecks, HealthServer, type Logger } from "@pesan/shared/observability";
import { closeOnly, type Lifecycle } from "@pesan/shared/runtime";
import { Gateway, gatewayOptionsFrom, gatewaySettings } from "@pesan/udp-gateway";
import { Router, routerOptionsFrom, routerSettings } from "@pesan/router";
import { createMonitorApp, defaultHostName, loadMonitorConfig } from "@pesan/monitor-bot";
import { MONITOR_PACKAGE_DIR } from "@pesan/monitor-bot/package-dir";

/** The built-in monitor config: it watches this very process. */
const EMBEDDED_MONITOR_CONFIG = new URL("../monitor.embedded.yaml", import.meta.url).pathname;

const SIZE_UNITS_KB: Record<string, number> = { kB: 1, MB: 1024, GB: 1024 * 1024 };

/**
 * A Postgres memory size ("16MB"; units kB, MB, GB as Postgres spells them) from minKb to maxKb,
 * checked here so that a bad value stops the start naming the setting instead of surfacing as
 * PGlite's "failed to initialize".
 */
export function postgresSize(minKb: number, maxKb: number) {
  return z.string().refine(
    (v) => {
      const m = /^(\d+)(kB|MB|GB)$/.exec(v);
      const kb = m ? Number(m[1]) * SIZE_UNITS_KB[m[2]!]! : NaN;
      return kb >= minKb && kb <= maxKb;
    },
    { message: `expected a size with a unit (kB, MB or GB, e.g. 16MB) from ${minKb}kB to ${maxKb / 1024 / 1024}GB` },
  );
}

export const embeddedSchema = z.object({
  ...routerSettings,
  ...gatewaySettings,
  HTTP_PORT: port().default(9090),
  DATA_DIR: z.string().min(1).default(".pesan-data"),
  /**
   * PGlite's shared_buffers. Postgres's default, 128MB, cost 60-100 MiB of resident memory for
   * a database this small (README "Performance"); 128kB is Postgres's minimum (16 pages), 1GB
   * leaves room in PGlite's 2 GiB WASM heap.
   */
  PGLITE_SHARED_BUFFERS: postgresSize(128, 1024 * 1024).default("16MB"),
  GATEWAY_ID: gatewaySettings.GATEWAY_ID.default("embedded"),
  // Quiet by default: the newcomer's terminal shows how to chat, not every request.
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("warn"),
  /** The monitor's config file; default: one that watches this process (apps/embedded/monitor.embedded.yaml). */
  MONITOR_CONFIG: z.string().min(1).optional(),
  /** "false" runs without the monitor. */
  MONITOR: z.enum(["true", "false"]).default("true"),
});
export type EmbeddedConfig = z.infer<typeof embeddedSchema>;

export function loadEmbeddedConfig(env: Env = process.env): EmbeddedConfig {
  return loadConfig(embeddedSchema, env);
}

export interface Embedded {
  components: Lifecycle[];
  gateway: Gateway;
  db: Db;
  bus: Bus;
  logger: Logger;
  describe(): string;
}

export async function createEmbedded(config: EmbeddedConfig, logger = createLogger("pesan", config.LOG_LEVEL)): Promise<Embedded> {
  const registry = createRegistry("pesan");
  const db = await openDb({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    applicationName: "pesan-embedded",
    queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    pgliteSettings: { shared_buffers: config.PGLITE_SHARED_BUFFERS },
  });
  const redisBus = config.REDIS_URL ? new RedisBus(config.REDIS_URL, config.BUS_PREFIX, { maxBytesInFlight: config.PUBLISH_MAX_BYTES }) : undefined;
  // On a shared Redis, other gateways and routers may read and write the same bus.
  if (redisBus) await redisBus.checkShards(config.BUS_SHARDS, logger);
  const bus: Bus = redisBus ?? new MemoryBus(config.BUS_PREFIX);
  // What the server runs with, as Postgres reports it (README "Performance" measures by it).
  const pglite = db.kind === "pglite" ? { shared_buffers: String((await db.query<{ shared_buffers: string }>("SHOW shared_buffers")).rows[0]?.shared_buffers) } : undefined;
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ applied }, "migrations applied");
  const routerOpts = routerOptionsFrom(config);
  // The monitor's probe account (probe-embedded) is registered with the password the router
  // accepts for probe names, so both take the same one.
  const probePassword = config.MONITOR === "true" ? embeddedProbePassword(config) : config.PROBE_PASSWORD;
  routerOpts.probePassword = probePassword;
  const gatewayOpts = gatewayOptionsFrom(config);
  // The public address defaults to the UDP port actually configured.
  if (!process.env.PUBLIC_ADDRESS) routerOpts.publicAddress = `127.0.0.1:${config.UDP_PORT}`;
  const router = new Router({ db, bus, logger: logger.child({ component: "router" }), registry }, routerOpts);
  const monitor = config.MONITOR === "true" ? createEmbeddedMonitor(config, db, logger, probePassword ?? "") : undefined;
  const gateway = new Gateway({ bus, logger: logger.child({ component: "gateway" }), registry }, gatewayOpts);
  const health = new HealthServer({
    host: config.HTTP_HOST,
    port: config.HTTP_PORT,
    registry,
    logger,
    checks: dependencyChecks({ db, bus }, { db: "database", bus: "bus" }),
    info: () => ({ service: "embedded", udp: gateway.address, database: db.kind, bus: bus.kind, ...(pglite ? { pglite } : {}) }),
  });
  return {
    components: [
      closeOnly("database", () => db.close()),
      closeOnly("bus", () => bus.close()),
      router,
      gateway,
      health,
      ...(monitor?.components ?? []),
    ],
    gateway,
    db,
    bus,
    logger,
    describe: () =>
      [
        `pesan is running (database: ${db.kind === "pglite" ? `embedded PGlite in ${config.DATA_DIR}` : "Postgres"}, bus: ${bus.kind === "memory" ? "in process" : "Redis"})`,
        "",
        `  chat with netcat:      nc -u 127.0.0.1 ${gateway.address?.port ?? config.UDP_PORT}`,
        `  or the CLI client:     ./pesan chat --server 127.0.0.1:${gateway.address?.port ?? config.UDP_PORT}`,
        `  health and metrics:    http://${config.HTTP_HOST}:${config.HTTP_PORT}/healthz  /metrics`,
        ...(monitor
          ? [
              `  dashboard:             http://${monitor.config.http.host}:${monitor.config.http.port}/`,
              `  monitoring API:        http://${monitor.config.http.host}:${monitor.config.http.port}/api/messaging  /api/svcstats  /api/userstats`,
            ]
          : []),
        "",
        "  then type:  REGISTER alice secret1   LOGIN alice secret1   SEND bob hello   WHO   INBOX",
        "  Ctrl-C stops it.",
        "",
      ].join("\n"),
  };
}

/**
 * The probe account's password: PROBE_PASSWORD, or one made once and kept in DATA_DIR, so the
 * account works after a restart.
 */
function embeddedProbePassword(config: EmbeddedConfig): string {
  if (config.PROBE_PASSWORD !== undefined) return config.PROBE_PASSWORD;
  mkdirSync(config.DATA_DIR, { recursive: true });
  const secretFile = join(config.DATA_DIR, "monitor-probe.secret");
  if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(18).toString("base64url"), { mode: 0o600 });
  return readFileSync(secretFile, "utf8").trim();
}

/**
 * The monitor runs in the same process and keeps its history in the same database. It watches
 * this machine as a local target (no SSH) with the gateway and the router as its services.
 */
function createEmbeddedMonitor(config: EmbeddedConfig, db: Db, logger: Logger, probePassword: string) {
  const env = {
    ...process.env,
    PROBE_PASSWORD: probePassword,
    UDP_PORT: String(config.UDP_PORT),
    HTTP_PORT: String(config.HTTP_PORT),
    // The local target: this machine under its own name, the disk the data lives on.
    MONITOR_TARGET_NAME: process.env.MONITOR_TARGET_NAME ?? defaultHostName(),
    DATA_DIR: resolve(config.DATA_DIR),
  };
  const monitorConfig = loadMonitorConfig(config.MONITOR_CONFIG ?? EMBEDDED_MONITOR_CONFIG, env, { requireDatabase: false });
  return createMonitorApp(monitorConfig, { packageDir: MONITOR_PACKAGE_DIR, db, logger: logger.child({ component: "monitor" }) });
}
