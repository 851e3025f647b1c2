/** Command-line plumbing shared by pnpm cluster, topology and bench. */
import { parseArgs, type ParseArgsConfig } from "node:util";

type StringOptions = Record<string, { type: "string"; default?: string }>;

/**
 * Parses `--name value` options plus `--help`; prints `help` and returns undefined for --help.
 * A malformed command line is a clear message and exit code 2, like a bad setting.
 */
export function parseCli<O extends StringOptions>(options: O, help: string): { [K in keyof O]: O[K]["default"] extends string ? string : string | undefined } | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: "boolean", short: "h" } } as ParseArgsConfig["options"] }));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${help}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(help);
    return undefined;
  }
  return values as never;
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
