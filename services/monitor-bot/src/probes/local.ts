/**
 * This machine as a host probe's host, without SSH: the files the SSH commands would print
 * (/proc/stat, /proc/meminfo) are read directly and go through the same parsers, the disk is
 * statfs(2) of the configured paths, and a configured command runs here through /bin/sh with
 * the same contract as over SSH (exit code, stdout, stderr, bounded by the timeout). The facts
 * (/cpu, /system) are read the same way: the files the default fact commands print, and
 * uname(2)'s fields as `uname -sr` prints them, for the same parsers (localFactSource).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, statfs } from "node:fs/promises";
import { release, type } from "node:os";
import type { HostMetric } from "../config/config.ts";
import { commandFactSource, type FactCommands, type FactKey, type FactSource, type FactTexts } from "./facts.ts";
import { diskFromStatfs } from "./parsers.ts";
import { TimeoutError, withTimeout } from "./schedule.ts";
import type { ExecResult, SshSession } from "./ssh.ts";

const MAX_OUTPUT = 64 * 1024;
/** The first CPU reading's window, when there is no earlier one to compare with (as the SSH default's sleep 1). */
const FIRST_CPU_WINDOW_MS = 1000;
/** An earlier /proc/stat read older than this is not used: the share would average too long a span. */
const CPU_READ_MAX_AGE_MS = 5 * 60_000;

/** A metric read without a command: text for the metric's parser, or the disk figure itself. */
export type LocalReading = { text: string } | { percent: number; totalBytes: number };

export class LocalHost implements SshSession {
  private readonly disk: readonly string[];
  private readonly procDir: string;
  private readonly children = new Set<ChildProcess>();
  private lastCpu: { line: string; at: number } | undefined;
  private closed = false;

  private readonly osReleaseFiles: readonly string[];

  /** procDir: /proc, or a copy of its files for a test; osReleaseFiles likewise (os-release(5): the first that exists). */
  constructor(disk: readonly string[], procDir = "/proc", osReleaseFiles: readonly string[] = ["/etc/os-release", "/usr/lib/os-release"]) {
    this.disk = disk;
    this.procDir = procDir;
    this.osReleaseFiles = osReleaseFiles;
  }

  /** A fact's raw text as its default command would print it, read here without a shell. */
  async readFact(key: FactKey, timeoutMs: number): Promise<string> {
    return withTimeout(this.factNow(key), timeoutMs, `reading ${key}`);
  }

  private async factNow(key: FactKey): Promise<string> {
    if (key === "cpuinfo") return this.proc("cpuinfo");
    if (key === "loadavg") return this.proc("loadavg");
    if (key === "uptime") return this.proc("uptime");
    // uname -s and -r are uname(2)'s sysname and release, which os.type() and os.release() return.
    if (key === "kernel") return `${type()} ${release()}\n`;
    let firstError: Error | undefined;
    for (const file of this.osReleaseFiles) {
      try {
        return await readFile(file, "utf8");
      } catch (e) {
        firstError ??= e as Error;
      }
    }
    throw new Error(`cannot read ${this.osReleaseFiles.join(" or ")}: ${firstError?.message ?? "no file given"}`);
  }

  async read(metric: HostMetric, timeoutMs: number): Promise<LocalReading> {
    return withTimeout(this.readNow(metric, timeoutMs), timeoutMs, `reading ${metric}`);
  }

  private async readNow(metric: HostMetric, timeoutMs: number): Promise<LocalReading> {
    if (metric === "mem") return { text: await this.proc("meminfo") };
    if (metric === "hdd") return diskFromStatfs(await Promise.all(this.disk.map((p) => statfs(p).catch((e: Error) => Promise.reject(new Error(`statfs ${p}: ${e.message}`))))));
    // Two `cpu ` lines for parseCpu: the previous probe's read and this one, so the share covers
    // the whole interval; the first time, two reads a second apart (within the timeout).
    let first = this.lastCpu && Date.now() - this.lastCpu.at < CPU_READ_MAX_AGE_MS ? this.lastCpu.line : undefined;
    let last = await this.cpuLine();
    if (first === undefined) {
      first = last;
      await new Promise((r) => setTimeout(r, Math.min(FIRST_CPU_WINDOW_MS, timeoutMs / 2)));
      last = await this.cpuLine();
    }
    this.lastCpu = { line: last, at: Date.now() };
    // The load averages ride along, as the SSH default command prints them after the two reads.
    const load = await this.proc("loadavg").catch(() => "");
    return { text: `${first}\n${last}\n${load}` };
  }

  private async cpuLine(): Promise<string> {
    const stat = await this.proc("stat");
    const line = stat.split("\n").find((l) => /^cpu\s/.test(l));
    if (!line) throw new Error(`${this.procDir}/stat has no 'cpu ' line`);
    return line;
  }

  private async proc(file: string): Promise<string> {
    try {
      return await readFile(`${this.procDir}/${file}`, "utf8");
    } catch (e) {
      throw new Error(`cannot read ${this.procDir}/${file}: ${(e as Error).message}`);
    }
  }

  /** /bin/sh -c command in its own process group, killed with its children at the timeout. */
  exec(command: string, timeoutMs: number): Promise<ExecResult> {
    if (this.closed) return Promise.reject(new Error("closed"));
    return new Promise<ExecResult>((resolve, reject) => {
      const child = spawn("/bin/sh", ["-c", command], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
      this.children.add(child);
      let stdout = "";
      let stderr = "";
      let timedOut = false;
      child.stdout!.on("data", (d: Buffer) => {
        if (stdout.length < MAX_OUTPUT) stdout += d.toString("utf8");
      });
      child.stderr!.on("data", (d: Buffer) => {
        if (stderr.length < MAX_OUTPUT) stderr += d.toString("utf8");
      });
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child);
      }, timeoutMs);
      child.once("error", (e) => {
        clearTimeout(timer);
        this.children.delete(child);
        reject(new Error(`cannot run the command: ${e.message}`));
      });
      child.once("close", (code) => {
        clearTimeout(timer);
        this.children.delete(child);
        if (timedOut) reject(new TimeoutError(`command did not finish within ${timeoutMs} ms`));
        else resolve({ code, stdout, stderr });
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.children) killGroup(c);
  }
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * The facts of a local target: a fact with a configured command runs it here (through /bin/sh,
 * as over SSH: a failure fails only that fact); the others are read directly (readFact). One
 * fact's failure never hides the others, and nothing here marks the host unreachable: there is
 * no connection to lose.
 */
export function localFactSource(host: LocalHost, commands: Partial<FactCommands>, timeoutMs: number): FactSource {
  const given = Object.fromEntries(Object.entries(commands).filter(([, c]) => c !== undefined)) as Partial<FactCommands>;
  const viaCommand = commandFactSource(given as FactCommands, (c) => host.exec(c, timeoutMs), () => false);
  return async (keys) => {
    const out: FactTexts = await viaCommand(keys.filter((k) => given[k] !== undefined));
    for (const k of keys) {
      if (given[k] !== undefined) continue;
      try {
        out[k] = { text: await host.readFact(k, timeoutMs) };
      } catch (e) {
        out[k] = { error: (e as Error).message ?? String(e) };
      }
    }
    return out;
  };
}
