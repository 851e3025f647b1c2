// What a process reports about itself: logs, metrics, health. Its start and stop (lifecycle,
// loops, runService) are @pesan/shared/runtime.
export { createLogger, type Logger } from "./log.ts";
export { createRegistry, Registry, Counter, Gauge, Histogram } from "./metrics.ts";
export { HealthServer, buildHealthApp, dependencyChecks, type HealthCheck, type HealthServerOptions } from "./health.ts";
