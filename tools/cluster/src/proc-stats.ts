/**
 * CPU time and peak memory of the bench's processes, read from /proc (Linux). The bench puts
 * them in its JSON line: CPU per delivered message says what a change costs even when the
 * 2 shared cores make the rate noisy, and peak RSS is what an operator sizes a host by.
 */
import { readdirSync, readFileSync } from "node:fs";

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux ABI Node runs on. */
const TICKS_PER_S = 100;

/** What /proc/<pid>/stat says of a process's CPU, in ms. */
export interface ProcStat {
  name: string;
  ppid: number;
  /** utime + stime: the process itself (all its threads). */
  ownMs: number;
  /** cutime + cstime: its children that ended and that it waited for. */
  reapedChildrenMs: number;
}

/** Parses the text of /proc/<pid>/stat; undefined if it is not one. */
export function parseStat(text: string): ProcStat | undefined {
  // The command name (field 2) may hold spaces and parentheses: it ends at the last ")".
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const fields = text.slice(close + 2).split(" ");
  // After the name, field 3 (state) is index 0: ppid (4) is 1, utime/stime (14, 15) are 11
  // and 12, cutime/cstime (16, 17) 13 and 14.
  const n = (i: number) => Number(fields[i]);
  if (fields.length < 15 || [1, 11, 12, 13, 14].some((i) => !Number.isFinite(n(i)) || fields[i] === "")) return undefined;
  const ms = (ticks: number) => (ticks * 1000) / TICKS_PER_S;
  return { name: text.slice(open + 1, close), ppid: n(1), ownMs: ms(n(11) + n(12)), reapedChildrenMs: ms(n(13) + n(14)) };
}

function readStat(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** utime + stime of a process in ms, or undefined when it is gone or /proc is not there. */
export function cpuMs(pid: number): number | undefined {
  return readStat(pid)?.ownMs;
}

/**
 * CPU ms of a server and its children (Postgres: the postmaster, its backends and workers;
 * Redis: its save children): its own, its ended children's (counted in it once reaped), and
 * its living children's. The difference of two readings is what the server spent between
 * them, children that came or went meanwhile included. Only direct children (a Postgres or
 * Redis server has no grandchildren); undefined when the process is gone.
 */
export function serverCpuMs(pid: number): number | undefined {
  const root = readStat(pid);
  if (!root) return undefined;
  let ms = root.ownMs + root.reapedChildrenMs;
  for (const child of childPids(pid)) {
    const c = readStat(child);
    if (c && c.ppid === pid) ms += c.ownMs + c.reapedChildrenMs;
  }
  return ms;
}

function childPids(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const s = readStat(Number(e));
    if (s?.ppid === pid) out.push(Number(e));
  }
  return out;
}

/** The parent of a process, and both names: for finding the postmaster from a backend's pid. */
export function parentOf(pid: number): { pid: number; name: string; parentName: string } | undefined {
  const s = readStat(pid);
  if (!s) return undefined;
  const p = readStat(s.ppid);
  return p ? { pid: s.ppid, name: s.name, parentName: p.name } : undefined;
}

/** A process's command name (comm), or undefined when it is gone. */
export function processName(pid: number): string | undefined {
  return readStat(pid)?.name;
}

/** The process_id line of Redis's `INFO server`; undefined if absent. */
export function redisPidFromInfo(info: string): number | undefined {
  const m = /^process_id:(\d+)\r?$/m.exec(info);
  return m ? Number(m[1]) : undefined;
}

/** Whether a URL's host is this machine (loopback or a Unix socket): only then are its pids ours to read. */
export function isLocalHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "" || h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h.startsWith("/");
}

/** The peak resident set (VmHWM) of a process in MiB, or undefined. */
export function peakRssMb(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** CPU ms each named process used between two readings (from `cpuMs`), per process name. */
export function cpuBetween(before: Map<string, number | undefined>, after: Map<string, number | undefined>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, a] of after) {
    const b = before.get(name);
    if (a !== undefined && b !== undefined) out.set(name, a - b);
  }
  return out;
}
