/**
 * The command line of every pesan entry point, one behaviour everywhere: `--help`/`-h` prints the
 * usage (exit 0), `--version`/`-V` prints pesan's version from the root package.json (exit 0), and
 * an unknown flag or a malformed value prints the error and the usage on stderr (exit 2). Both
 * --help and --version are answered before any configuration is read or connection made.
 *
 * No import.meta here (jest compiles this to CommonJS): the version is found by walking up from
 * the running script, then from the working directory, to the package.json named "pesan".
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

export type CliValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

export interface CommandLineSpec {
  /** The whole usage text, ending in a newline. */
  usage: string;
  /** Options besides --help and --version, as node:util parseArgs takes them. */
  options?: ParseArgsOptionsConfig;
  /** Whether words that are not options are accepted (default: no, they are an error). */
  allowPositionals?: boolean;
  /** What --version names before the number (default "pesan"). */
  name?: string;
}

/** What a command line asks for: run with these values, or print and exit with this code. */
export type CommandLine = { run: true; values: CliValues; positionals: string[] } | { run: false; code: 0 | 2; stdout: string; stderr: string };

/** The root package.json's version ("unknown" when none is found). */
export function pesanVersion(starts: string[] = [process.argv[1] ? dirname(safeRealpath(process.argv[1])) : process.cwd(), process.cwd()]): string {
  for (const start of starts) {
    for (let dir = start; ; dir = dirname(dir)) {
      const file = join(dir, "package.json");
      if (existsSync(file)) {
        try {
          const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
          if (pkg.name === "pesan" && typeof pkg.version === "string") return pkg.version;
        } catch {
          // An unreadable package.json on the way up is not ours; keep looking.
        }
      }
      if (dirname(dir) === dir) break;
    }
  }
  return "unknown";
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Pure: what the command line asks for (the caller prints and exits). */
export function readCommandLine(argv: string[], spec: CommandLineSpec, version: () => string = pesanVersion): CommandLine {
  let parsed: { values: CliValues; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: spec.allowPositionals ?? false,
      options: { ...spec.options, help: { type: "boolean", short: "h" }, version: { type: "boolean", short: "V" } },
    }) as { values: CliValues; positionals: string[] };
  } catch (e) {
    return { run: false, code: 2, stdout: "", stderr: `${(e as Error).message}\n\n${spec.usage}` };
  }
  if (parsed.values.help) return { run: false, code: 0, stdout: spec.usage, stderr: "" };
  if (parsed.values.version) return { run: false, code: 0, stdout: `${spec.name ?? "pesan"} ${version()}\n`, stderr: "" };
  return { run: true, values: parsed.values, positionals: parsed.positionals };
}

/**
 * For a main: the values to run with, or undefined after printing --help or --version (the
 * caller returns; nothing else was done). A bad command line exits the process with code 2.
 */
export function parseCommandLine(argv: string[], spec: CommandLineSpec): { values: CliValues; positionals: string[] } | undefined {
  const cl = readCommandLine(argv, spec);
  if (cl.run) return cl;
  process.stdout.write(cl.stdout);
  process.stderr.write(cl.stderr);
  if (cl.code !== 0) process.exit(cl.code);
  return undefined;
}
