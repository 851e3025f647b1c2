export { createLogger, type Logger } from "./log.ts";
export { createRegistry, Registry, Counter, Gauge, Histogram } from "./metrics.ts";
export { HealthServer, buildHealthApp, dependencyChecks, type HealthCheck, type HealthServerOptions } from "./health.ts";
export { runComponents, exitOnStartupError, closeOnly, type Lifecycle, type ProcessHost } from "./lifecycle.ts";
export { runService, type ArgValues, type RunServiceHost, type ServiceDefinition, type ServiceParts } from "./service.ts";
export { Loop } from "./loop.ts";
