/**
 * The skeleton every pesan process shares, so each main.ts only wires: `--help`, `--version`
 * and usage on a bad flag (@pesan/shared/cli, answered before any configuration), configuration
 * (a bad one is one clear line and exit code 2), building the components, then runComponents
 * (start in order, stop in reverse on SIGTERM/SIGINT, exit on an uncaught exception).
 */
import type { ParseArgsOptionsConfig } from "node:util";
import { readCommandLine } from "../cli.ts";
import { exitOnStartupError, runComponents, type Lifecycle, type ProcessHost } from "./lifecycle.ts";
import type { Logger } from "../observability/log.ts";

export type ArgValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

/** What a process runs: its components in start order, the logger for its lifecycle, the stop deadline. */
export interface ServiceParts {
  components: Lifecycle[];
  logger: Logger;
  deadlineMs: number;
  /** Runs once every component has started (e.g. print where to connect). */
  started?: () => void;
}

export interface ServiceDefinition<C> {
  /** Printed for --help / -h, and on stderr after a bad command line. */
  help: string;
  /** Options besides --help and --version, as node:util parseArgs takes them. */
  options?: ParseArgsOptionsConfig;
  /** Reads and validates the configuration; a throw ends the process with code 2 and the message. */
  config: (args: ArgValues) => C;
  /** Builds the components; undefined when there is nothing to run (e.g. monitor-bot --check). */
  build: (config: C, args: ArgValues) => Promise<ServiceParts | undefined>;
}

export interface RunServiceHost extends ProcessHost {
  argv: string[];
  writeOut: (s: string) => void;
  /** Where a bad command line's error and usage go (default: process.stderr). */
  writeErr?: (s: string) => void;
}

const defaultHost = (): RunServiceHost => ({
  argv: process.argv.slice(2),
  writeOut: (s) => void process.stdout.write(s),
  writeErr: (s) => void process.stderr.write(s),
  once: (event, fn) => void process.once(event, fn),
  on: (event, fn) => void process.on(event, fn),
  exit: (code) => process.exit(code),
});

/**
 * Runs a service to completion of its start-up; resolves to the stop function (undefined when
 * nothing was started). Tests pass a host; a main.ts calls `void runService(def)`: every error
 * is handled here (start-up errors exit with code 2), so the promise never rejects.
 */
export async function runService<C>(def: ServiceDefinition<C>, host: RunServiceHost = defaultHost()): Promise<(() => Promise<void>) | undefined> {
  try {
    const cl = readCommandLine(host.argv, { usage: def.help, ...(def.options ? { options: def.options } : {}) });
    if (!cl.run) {
      // --help, --version (exit 0), or a bad flag (usage on stderr, exit 2): nothing was read yet.
      host.writeOut(cl.stdout);
      (host.writeErr ?? ((s: string) => void process.stderr.write(s)))(cl.stderr);
      if (cl.code !== 0) host.exit(cl.code);
      return undefined;
    }
    const { values } = cl;
    const config = def.config(values);
    const parts = await def.build(config, values);
    if (!parts) return undefined;
    const stop = await runComponents(parts.components, parts.logger, parts.deadlineMs, host);
    parts.started?.();
    return stop;
  } catch (e) {
    // A bad option, a bad configuration, a failed migration: one line on stderr, exit code 2.
    exitOnStartupError(e);
  }
}
