/**
 * CPU time and peak memory of the bench's processes, read from /proc (Linux). The bench puts
 * them in its JSON line: CPU per delivered message says what a change costs even when the
 * 2 shared cores make the rate noisy, and peak RSS is what an operator sizes a host by.
 */
import { readFileSync } from "node:fs";

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux ABI Node runs on. */
const TICKS_PER_S = 100;

/** utime + stime of a process in ms, or undefined when it is gone or /proc is not there. */
export function cpuMs(pid: number): number | undefined {
  try {
    // The command name (field 2) may hold spaces and parentheses: split after its last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_S;
  } catch {
    return undefined;
  }
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
