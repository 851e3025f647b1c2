// The process runtime: components started in order and stopped in reverse (runComponents),
// the one main() skeleton of the five processes (runService), and the timed loop with an
// idempotent close (Loop). What a process reports (logs, metrics, health) is
// @pesan/shared/observability.
export { runComponents, exitOnStartupError, closeOnly, type Lifecycle, type ProcessHost } from "./lifecycle.ts";
export { runService, type ArgValues, type RunServiceHost, type ServiceDefinition, type ServiceParts } from "./service.ts";
export { Loop } from "./loop.ts";
