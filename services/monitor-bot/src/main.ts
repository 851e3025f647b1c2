#!/usr/bin/env node
/** The monitor-bot process: wiring only. */
import { runService } from "@pesan/shared/runtime";
import { createMonitorApp } from "./app.ts";
import { loadMonitorConfig } from "./config/config.ts";
import { MONITOR_PACKAGE_DIR } from "./package-dir.ts";

const HELP = `pesan monitor-bot: probes hosts over SSH and this machine (a local target, no SSH),
services, gateways, Postgres, Redis and the messaging path; keeps history in Postgres; runs actions on failures and thresholds; serves the
monitoring API and a live dashboard; alerts members on Telegram (optional telegram section).

usage: node services/monitor-bot/src/main.ts [--config FILE] [--check] [--help] [--version]

  --config FILE  the config file, YAML or JSON (default: $MONITOR_CONFIG, else monitor.yaml)
  --check        validate the config file, print a summary and exit (0 valid, 2 invalid)
  --help         this text

Secrets stay out of the file with \${ENV:NAME} or \${ENV:NAME:-default} in any string value.
A bad file stops the program (exit code 2) with a message naming every bad field.
See services/monitor-bot/README.md and monitor.example.yaml for every setting.

HTTP (default 127.0.0.1:8080): GET /  (the dashboard)  /api/rmon/:server  /api/svcstats
  /api/messaging  /api/userstats  /api/components  /api/down  /api/dashboard  /api/live
  /api/history/:server  /healthz  /metrics;  POST /telegram/webhook in webhook mode
`;

const SHUTDOWN_DEADLINE_MS = 10_000;

void runService({
  help: HELP,
  options: { config: { type: "string", short: "c" }, check: { type: "boolean" } },
  config: (args) => {
    const file = (typeof args.config === "string" ? args.config : undefined) ?? process.env.MONITOR_CONFIG ?? "monitor.yaml";
    return { file, config: loadMonitorConfig(file) };
  },
  build: async ({ file, config }, args) => {
    if (args.check) {
      process.stdout.write(
        `${file}: valid (${config.targets.length} targets, ${config.components.length} components, ${config.messaging.length} messaging probes, ${config.actions.length} actions)\n`,
      );
      return undefined;
    }
    const app = createMonitorApp(config, { packageDir: MONITOR_PACKAGE_DIR });
    return { components: app.components, logger: app.logger, deadlineMs: SHUTDOWN_DEADLINE_MS };
  },
});
