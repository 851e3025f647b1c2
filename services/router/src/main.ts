#!/usr/bin/env node
/** The router process: wiring only. */
import { RedisBus, shardsPoolWarning } from "@pesan/shared/bus";
import { migrate, PgDb } from "@pesan/shared/db";
import { createLogger, createRegistry, dependencyChecks, HealthServer } from "@pesan/shared/observability";
import { closeOnly, runService } from "@pesan/shared/runtime";
import { loadRouterConfig } from "./config.ts";
import { routerOptionsFrom } from "./options.ts";
import { Router } from "./router.ts";

const HELP = `pesan router: consumes the gateways' stream, runs every command, keeps state in Postgres.

usage: node services/router/src/main.ts [--help] [--version]

Configured by environment variables (or a JSON file named by PESAN_CONFIG_FILE):
  DATABASE_URL (required)  postgres://...
    (a primary and replicas: postgres://u@pg1:5432,pg2:5432/db?target_session_attrs=read-write, docs/ha.md)
  REDIS_URL (required)  redis://host:port, redis+sentinel://h1:26379,h2:26379,.../<master>
                        or redis+cluster://h1:p1,h2:p2,...   BUS_SHARDS=1 (in stream shards)
  SERVER_NAME=local  PUBLIC_ADDRESS=127.0.0.1:4999  QUOTA=10000  SERVERS=name=host:port,...
  SESSION_LEASE_MS=180000  PLAIN_SESSIONS=all (all, loopback, none)  SESSIONS_PER_IP=1000
  BATCH_SIZE=128  CLAIM_IDLE_MS=10000  RESEND_BASE_MS=200
  RESEND_MAX_ATTEMPTS=8  RESEND_MAX_DELAY_MS=5000  INBOX_LIMIT=100  BUS_PREFIX=pesan:
  PASSWORD_HASH_COST=17 (scrypt N=2^17, r=8, p=1: 128 MiB and ~350 ms per hash)
  PASSWORD_HASH_CONCURRENCY=0 (cores - 1, 1 to 3)  PASSWORD_QUEUE_MAX=256  PASSWORD_QUEUE_WAIT_MS=1000
  PROXY_IPS=ip,... (proxies hiding client IPs: the password throttle counts their clients by port)
  PROBE_PASSWORD (REGISTER of a probe-... account, invisible to users, needs it; unset: refused)
  BOX_LIMIT=10000 (undelivered per recipient; ERR BOX_FULL)  MESSAGE_RETENTION_MS=2592000000 (30 days)
  MESSAGES_KEPT_PER_USER=1000  CONNECTION_LOG_RETENTION_MS=2592000000  CONNECTION_LOG_MAX_ROWS=1000000
  RETENTION_INTERVAL_MS=60000  RETENTION_BATCH=1000
  DB_POOL_MAX=10  DB_QUERY_TIMEOUT_MS=30000 (a statement's limit; 0 = none)
  HTTP_HOST=127.0.0.1  HTTP_PORT=9200 (/healthz, /metrics)  LOG_LEVEL=info  ROUTER_ID
See README.md for the full table.
`;

void runService({
  help: HELP,
  config: () => {
    const config = loadRouterConfig();
    if (!config.DATABASE_URL || !config.REDIS_URL) throw new Error("invalid configuration:\n  - DATABASE_URL and REDIS_URL are required (use `pnpm start` for the embedded mode)");
    return { ...config, DATABASE_URL: config.DATABASE_URL, REDIS_URL: config.REDIS_URL };
  },
  build: async (config) => {
    const opts = routerOptionsFrom(config);
    const logger = createLogger("router", config.LOG_LEVEL, { routerId: opts.routerId });
    const registry = createRegistry("router");
    const db = new PgDb(config.DATABASE_URL, { applicationName: opts.routerId, max: config.DB_POOL_MAX, queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS });
    const bus = new RedisBus(config.REDIS_URL, config.BUS_PREFIX);
    await bus.checkShards(config.BUS_SHARDS, logger);
    const poolWarning = shardsPoolWarning(config.BUS_SHARDS, config.DB_POOL_MAX);
    if (poolWarning) logger.warn(poolWarning);
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ applied }, "migrations applied");
    const router = new Router({ db, bus, logger, registry }, opts);
    const health = new HealthServer({
      host: config.HTTP_HOST,
      port: config.HTTP_PORT,
      registry,
      logger,
      checks: dependencyChecks({ db, bus }),
      info: () => ({ service: "router", routerId: opts.routerId, cluster: opts.cluster }),
    });
    return {
      components: [closeOnly("postgres", () => db.close()), closeOnly("redis", () => bus.close()), router, health],
      logger,
      deadlineMs: config.SHUTDOWN_TIMEOUT_MS,
    };
  },
});
