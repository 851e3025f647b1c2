import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** Structured JSON logs on stdout (one line per event), tagged with the service name. */
export function createLogger(service: string, level: LevelWithSilent = "info", bindings: Record<string, unknown> = {}): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}
