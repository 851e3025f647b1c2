/**
 * Facts about a host that change rarely: the processor (model, cores), the load average, the
 * installed system (OS, kernel) and the uptime. They answer the bot's /cpu and /system, as in
 * the source paper ("informasi detail processor" and "system yang terinstall").
 *
 * The parsers are pure and never throw: odd output (another OS, a custom command, a truncated
 * read) leaves that fact undefined instead of failing the others. Where the raw texts come from
 * is a FactSource: over SSH it runs the configured commands (commandFactSource); a local target
 * reads the same texts here (localFactSource in local.ts: the files, uname's fields, or a
 * configured command through /bin/sh).
 */
import { parseLoadavg } from "./parsers.ts";

export const FACT_KEYS = ["cpuinfo", "loadavg", "osRelease", "kernel", "uptime"] as const;
export type FactKey = (typeof FACT_KEYS)[number];
export type FactCommands = Record<FactKey, string>;

/** Linux defaults; each is configurable (targets[].facts.commands). */
export const DEFAULT_FACT_COMMANDS: FactCommands = {
  cpuinfo: "cat /proc/cpuinfo",
  loadavg: "cat /proc/loadavg",
  osRelease: "cat /etc/os-release",
  kernel: "uname -sr",
  uptime: "cat /proc/uptime",
};

/** The raw output of each fact's command; an error text where it could not be read. */
export type FactTexts = Partial<Record<FactKey, { text: string } | { error: string }>>;

/** Returns the raw texts for the given keys (one failure must not hide the others). */
export type FactSource = (keys: readonly FactKey[]) => Promise<FactTexts>;

export interface SystemFacts {
  cpuModel: string | undefined;
  /** Logical processors (what `nproc` counts). */
  cores: number | undefined;
  /** 1, 5 and 15 minute load averages. */
  load: [number, number, number] | undefined;
  /** PRETTY_NAME of /etc/os-release, e.g. "Debian GNU/Linux 12 (bookworm)". */
  os: string | undefined;
  /** e.g. "Linux 6.1.0-18-amd64". */
  kernel: string | undefined;
  uptimeSeconds: number | undefined;
  at: Date;
  /** Per fact that could not be read: why (shown to admins, kept short). */
  errors: Partial<Record<FactKey, string>>;
}

const clean = (s: string | undefined): string | undefined => {
  const v = s?.replace(/[\u0000-\u001f\u007f]/g, " ").replace(/\s+/g, " ").trim();
  return v ? v.slice(0, 200) : undefined;
};

/**
 * /proc/cpuinfo: the model from `model name` (x86), else `Processor`, `cpu model` or `Hardware`
 * (ARM, MIPS); the cores are the `processor` entries. A bare number (a custom `nproc`) is the
 * core count alone.
 */
export function parseCpuInfo(text: string): { model: string | undefined; cores: number | undefined } {
  if (/^\s*\d+\s*$/.test(text)) {
    const n = Number(text);
    return { model: undefined, cores: n > 0 ? n : undefined };
  }
  const fields = new Map<string, string>();
  let cores = 0;
  for (const line of text.split("\n")) {
    const m = /^([^:]+?)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.trim().toLowerCase();
    if (key === "processor" && /^\d+$/.test(m[2]!.trim())) cores += 1;
    if (!fields.has(key)) fields.set(key, m[2]!);
  }
  let model: string | undefined;
  for (const key of ["model name", "processor", "cpu model", "hardware", "cpu"]) {
    const v = clean(fields.get(key));
    // "processor: 0" is an index on x86, a name on old ARM kernels.
    if (v && !/^\d+$/.test(v)) {
      model = v;
      break;
    }
  }
  return { model, cores: cores > 0 ? cores : undefined };
}

/** /proc/loadavg: `0.52 0.58 0.59 1/467 12345` (the same parser as the CPU probe's load). */
export const parseLoadAvg = parseLoadavg;

/** /etc/os-release: PRETTY_NAME, else NAME and VERSION; shell quoting undone. */
export function parseOsRelease(text: string): string | undefined {
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    const q = v[0];
    if ((q === '"' || q === "'") && v.endsWith(q) && v.length >= 2) v = v.slice(1, -1);
    if (q === '"') v = v.replace(/\\(["\\$`])/g, "$1");
    vars.set(m[1]!, v);
  }
  return clean(vars.get("PRETTY_NAME")) ?? clean([vars.get("NAME"), vars.get("VERSION")].filter(Boolean).join(" "));
}

/** `uname -sr`: its first line, e.g. `Linux 6.1.0-18-amd64`. */
export function parseKernel(text: string): string | undefined {
  return clean(text.split("\n").find((l) => l.trim() !== ""));
}

/** /proc/uptime: seconds since boot (the first number). */
export function parseUptime(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)(?:\s|$)/.exec(text);
  return m ? Math.floor(Number(m[1])) : undefined;
}

/** Combines the raw texts into facts; a missing or unreadable text leaves its facts undefined. */
export function factsFrom(texts: FactTexts, at: Date): SystemFacts {
  const errors: SystemFacts["errors"] = {};
  const text = (k: FactKey): string | undefined => {
    const t = texts[k];
    if (t === undefined) return undefined;
    if ("error" in t) {
      errors[k] = t.error.slice(0, 200);
      return undefined;
    }
    return t.text;
  };
  const read = <T>(k: FactKey, parse: (s: string) => T | undefined): T | undefined => {
    const s = text(k);
    if (s === undefined) return undefined;
    const v = parse(s);
    if (v === undefined) errors[k] = `unreadable output: ${JSON.stringify(s.slice(0, 60))}`;
    return v;
  };
  const cpu = read("cpuinfo", (s) => {
    const c = parseCpuInfo(s);
    return c.model === undefined && c.cores === undefined ? undefined : c;
  });
  return {
    cpuModel: cpu?.model,
    cores: cpu?.cores,
    load: read("loadavg", parseLoadAvg),
    os: read("osRelease", parseOsRelease),
    kernel: read("kernel", parseKernel),
    uptimeSeconds: read("uptime", parseUptime),
    at,
    errors,
  };
}

/** Reads every fact from a source and combines them; a source that throws gives no facts. */
export async function collectFacts(source: FactSource, now: () => Date): Promise<SystemFacts> {
  return factsFrom(await source(FACT_KEYS), now());
}

/** What commandFactSource needs: run one command, its exit code and output. */
export type RunCommand = (command: string) => Promise<{ code: number | null; stdout: string; stderr: string }>;

/**
 * A FactSource that runs the configured commands (over the target's SSH connection). The
 * commands run one after another: they are cheap, and this keeps the facts from taking more
 * than one of the connection's channels. A failed connection throws (the caller reports the
 * host unreachable); a failed command only fails its fact.
 */
export function commandFactSource(commands: FactCommands, run: RunCommand, isConnectError: (e: unknown) => boolean): FactSource {
  return async (keys) => {
    const out: FactTexts = {};
    for (const k of keys) {
      try {
        const r = await run(commands[k]);
        out[k] = r.code === 0 ? { text: r.stdout } : { error: `exit code ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().slice(0, 150)}` : ""}` };
      } catch (e) {
        if (isConnectError(e)) throw e;
        out[k] = { error: (e as Error).message ?? String(e) };
      }
    }
    return out;
  };
}
