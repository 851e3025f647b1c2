import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/**
 * Structured JSON logs on stdout (one line per event), tagged with the service name. A command
 * whose stdout is its result (peer-sync's `invite` prints a token) logs on stderr (fd 2).
 */
export function createLogger(service: string, level: LevelWithSilent = "info", bindings: Record<string, unknown> = {}, fd: 1 | 2 = 1): Logger {
  const opts = { name: service, level, base: { service, pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime };
  return fd === 1 ? pino(opts) : pino(opts, pino.destination({ fd, sync: true }));
}
