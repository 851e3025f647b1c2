#!/usr/bin/env node
/** `pnpm start`: the whole messenger in one process, no external services needed. */
import { parseArgs } from "node:util";
import { exitOnStartupError, runComponents } from "@pesan/shared/observability";
import { createEmbedded, loadEmbeddedConfig, type EmbeddedConfig } from "./embedded.ts";

const HELP = `pesan, all in one process: UDP gateway + router.

usage: pnpm start [--help]

With no settings it keeps data in PGlite (embedded Postgres) under .pesan-data/ and uses an
in-process bus. Set DATABASE_URL and REDIS_URL to use a real Postgres and Redis instead.
Common settings (environment): UDP_PORT=4999  HTTP_PORT=9090  DATA_DIR=.pesan-data
  SERVER_NAME=local  QUOTA=10000  SESSION_LEASE_MS=180000  LOG_LEVEL=info
Every router and gateway setting applies; see README.md.
`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  let config: EmbeddedConfig;
  try {
    config = loadEmbeddedConfig();
  } catch (e) {
    exitOnStartupError(e);
  }
  process.stderr.write(config.DATABASE_URL ? "starting...\n" : `starting (opening the embedded database in ${config.DATA_DIR}, a few seconds the first time)...\n`);
  const app = await createEmbedded(config);
  await runComponents(app.components, app.logger, config.SHUTDOWN_TIMEOUT_MS);
  process.stderr.write(`\n${app.describe()}`);
}

main().catch(exitOnStartupError);
