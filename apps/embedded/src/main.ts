#!/usr/bin/env node
/** `pnpm start`: the whole messenger in one process, no external services needed. */
import { runService } from "@pesan/shared/runtime";
import { createEmbedded, loadEmbeddedConfig } from "./embedded.ts";

const HELP = `pesan, all in one process: UDP gateway + router.

usage: pnpm start [--help] [--version]

With no settings it keeps data in PGlite (embedded Postgres) under .pesan-data/ and uses an
in-process bus. Set DATABASE_URL and REDIS_URL to use a real Postgres and Redis instead.
Common settings (environment): UDP_PORT=4999  HTTP_PORT=9090  DATA_DIR=.pesan-data
  SERVER_NAME=local  QUOTA=10000  SESSION_LEASE_MS=180000  LOG_LEVEL=info
  PGLITE_SHARED_BUFFERS=16MB  PGlite's shared_buffers (kB, MB or GB; 128kB to 1GB): more
                              holds more of a big database in memory, at that much more RSS
Every router and gateway setting applies; see README.md.
`;

void runService({
  help: HELP,
  config: () => loadEmbeddedConfig(),
  build: async (config) => {
    process.stderr.write(config.DATABASE_URL ? "starting...\n" : `starting (opening the embedded database in ${config.DATA_DIR}, a few seconds the first time)...\n`);
    const app = await createEmbedded(config);
    return { components: app.components, logger: app.logger, deadlineMs: config.SHUTDOWN_TIMEOUT_MS, started: () => void process.stderr.write(`\n${app.describe()}`) };
  },
});
