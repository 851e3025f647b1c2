#!/usr/bin/env node
/** The peer-sync process: wiring only. */
import { migrate, PgDb } from "@pesan/shared/db";
import { createLogger, createRegistry, HealthServer } from "@pesan/shared/observability";
import { closeOnly, runService } from "@pesan/shared/runtime";
import { loadPeerSyncConfig } from "./config.ts";
import { peerSyncOptionsFrom } from "./options.ts";
import { PeerSync } from "./peer-sync.ts";
import { runMembershipCommand } from "./membership/cli.ts";

const HELP = `pesan peer-sync: links this cluster with the others (Update Server, Update User, Update Connected).

usage: node services/peer-sync/src/main.ts [--help] [--version]
       node services/peer-sync/src/main.ts invite --name <cluster> [--ttl 1h]   (prints a one-time invite token)
       node services/peer-sync/src/main.ts revoke <cluster>                     (removes a member everywhere)

Configured by environment variables (or a JSON file named by PESAN_CONFIG_FILE):
  DATABASE_URL (required)  this cluster's postgres://... (several hosts with target_session_attrs=read-write: docs/ha.md)
  SERVER_NAME=local  PUBLIC_ADDRESS=127.0.0.1:4999   (the same as this cluster's routers)
  SYNC_LISTEN=0.0.0.0:7000  SYNC_URL=http://127.0.0.1:7000 (how peers reach this one)
  PEERS=name=syncUrl=clientAddress=key,...  nearest first; one key per pair of clusters,
        the same on both sides (e.g. openssl rand -hex 32); or a JSON array of
        {name, syncUrl, address, key} (best kept in the PESAN_CONFIG_FILE, not the environment)
  LIVENESS_INTERVAL_MS=2000  LIVENESS_FAILURES=2  LIVENESS_TIMEOUT_MS=1000  CLOCK_SKEW_MS=60000
  SYNC_TLS_CERT, SYNC_TLS_KEY (PEM files: serve https)  SYNC_TLS_CA (PEM: trust for https peers)
  OUTBOX_POLL_MS=250  OUTBOX_BATCH=500  SNAPSHOT_INTERVAL_MS=30000  DB_POOL_MAX=4
  DB_QUERY_TIMEOUT_MS=30000 (a statement's limit; 0 = none)
  JOIN=<invite token>  join the federation of the member that issued it, at the first start
        with that invite (again with a new one after a revoke; SERVER_NAME must be the name
        the invite was issued for; kept secret like a key)
  HTTP_HOST=127.0.0.1  HTTP_PORT=9300 (/healthz, /metrics)  LOG_LEVEL=info
See services/peer-sync/README.md.
`;

const command = process.argv[2];
if (command === "invite" || command === "revoke") {
  void runMembershipCommand(command, process.argv.slice(3)).then((code) => {
    process.exitCode = code;
  });
} else void runService({
  help: HELP,
  config: () => loadPeerSyncConfig(),
  build: async (config) => {
    const opts = peerSyncOptionsFrom(config);
    const logger = createLogger("peer-sync", config.LOG_LEVEL, { cluster: config.SERVER_NAME });
    const registry = createRegistry("peer-sync");
    const db = new PgDb(config.DATABASE_URL, { applicationName: `peer-sync-${config.SERVER_NAME}`, max: config.DB_POOL_MAX, queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS });
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ applied }, "migrations applied");
    const peerSync = new PeerSync(opts, { db, logger, registry });
    const health = new HealthServer({
      host: config.HTTP_HOST,
      port: config.HTTP_PORT,
      registry,
      logger,
      // Only our own database makes us unhealthy; a DOWN peer is news, not our failure.
      checks: [{ name: "postgres", check: async () => void (await db.query("SELECT 1")) }],
      info: () => ({ service: "peer-sync", cluster: config.SERVER_NAME, syncUrl: opts.syncUrl, links: peerSync.linkStates() }),
    });
    return { components: [closeOnly("postgres", () => db.close()), peerSync, health], logger, deadlineMs: config.SHUTDOWN_TIMEOUT_MS };
  },
});
