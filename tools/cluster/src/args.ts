/** Command-line plumbing shared by pnpm cluster, topology and bench. */
import type { ParseArgsOptionsConfig } from "node:util";
import { parseCommandLine } from "@pesan/shared/cli";

type StringOptions = Record<string, { type: "string"; default?: string }>;

/**
 * Parses `--name value` options (@pesan/shared/cli: --help and --version print and return
 * undefined; a malformed command line is the error and the usage on stderr, exit code 2).
 */
export function parseCli<O extends StringOptions>(options: O, help: string, argv: string[] = process.argv.slice(2)): { [K in keyof O]: O[K]["default"] extends string ? string : string | undefined } | undefined {
  return parseCommandLine(argv, { usage: help, options: options as ParseArgsOptionsConfig })?.values as never;
}

/** A whole number option >= min (or any number when whole is false), or exit 2 naming it. */
export function numberOption(name: string, value: string, min: number, whole = true): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || (whole && !Number.isInteger(n))) {
    process.stderr.write(`--${name} must be a ${whole ? "whole " : ""}number >= ${min} (got ${JSON.stringify(value)})\n`);
    process.exit(2);
  }
  return n;
}
