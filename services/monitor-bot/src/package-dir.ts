// Kept apart from index.ts: import.meta does not exist under jest (CommonJS), and the tests
// find the package from the repository root instead.
import { fileURLToPath } from "node:url";

/** services/monitor-bot, where migrations/ lives: createMonitorApp's packageDir. */
export const MONITOR_PACKAGE_DIR: string = fileURLToPath(new URL("..", import.meta.url));
