/**
 * Turns a probe command's output into a percentage. The default commands print raw Linux
 * files; a custom command may print just the number instead (`42`, `42.5`, `42%`), which is
 * taken as is. Each parser returns the value or throws an Error saying what it could not read.
 * The same parsers read the same files on a local target (no SSH), so both agree to the digit.
 */

const round2 = (v: number): number => Math.round(v * 100) / 100;

/** One number, optionally followed by %, and nothing else. */
function plainNumber(out: string): number | undefined {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*%?\s*$/.exec(out);
  return m ? Number(m[1]) : undefined;
}

function percent(v: number, what: string): number {
  if (!Number.isFinite(v) || v < 0 || v > 100) throw new Error(`${what} ${v} is not a percentage (0-100)`);
  return round2(v);
}

/**
 * Two `cpu ` lines of /proc/stat read some time apart: busy share of the ticks in between.
 * Fields: user nice system idle iowait irq softirq steal (guest time is already in user/nice).
 */
export function parseCpu(out: string): number {
  const n = plainNumber(out);
  if (n !== undefined) return percent(n, "CPU");
  const reads = out
    .split("\n")
    .filter((l) => /^cpu\s/.test(l))
    .map((l) => l.trim().split(/\s+/).slice(1, 9).map(Number));
  if (reads.length < 2) throw new Error("expected two 'cpu ' lines of /proc/stat or one number");
  const a = reads[0]!;
  const b = reads[reads.length - 1]!;
  if (a.length < 4 || b.length < 4 || [...a, ...b].some((x) => !Number.isFinite(x))) throw new Error("malformed 'cpu ' line in /proc/stat output");
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  const idle = (xs: number[]) => xs[3]! + (xs[4] ?? 0);
  const total = sum(b) - sum(a);
  if (total <= 0) throw new Error("no CPU time passed between the two /proc/stat reads (sleep longer between them)");
  return percent((100 * (total - (idle(b) - idle(a)))) / total, "CPU");
}

/** /proc/meminfo: share of MemTotal that is not MemAvailable (or free + buffers + cache on old kernels). */
export function parseMem(out: string): number {
  const n = plainNumber(out);
  if (n !== undefined) return percent(n, "memory");
  const kb = new Map<string, number>();
  for (const m of out.matchAll(/^(\w+):\s+(\d+)/gm)) kb.set(m[1]!, Number(m[2]));
  const total = kb.get("MemTotal");
  if (!total) throw new Error("expected /proc/meminfo lines (MemTotal, MemAvailable) or one number");
  const available = kb.get("MemAvailable") ?? (kb.get("MemFree") ?? 0) + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  return percent(100 * (1 - available / total), "memory");
}

/** `df -P` lines: each filesystem's capacity column and its size (1024-blocks). */
function dfRows(out: string): Array<{ capacity: number; kb: number | undefined }> {
  const rows: Array<{ capacity: number; kb: number | undefined }> = [];
  for (const line of out.split("\n").slice(1)) {
    // Scan from the end: the mount point may hold spaces, the capacity column never does.
    const words = line.trim().split(/\s+/);
    for (let i = words.length - 1; i >= 0; i--) {
      const m = /^(\d+)%$/.exec(words[i]!);
      if (m) {
        const kb = i >= 3 && /^\d+$/.test(words[i - 3]!) ? Number(words[i - 3]) : undefined;
        rows.push({ capacity: Number(m[1]), kb });
        break;
      }
    }
  }
  return rows;
}

/** The fullest of several, the first one on a tie. */
function fullest<T extends { capacity: number }>(rows: T[]): T {
  return rows.reduce((a, b) => (b.capacity > a.capacity ? b : a));
}

/** `df -P`: the fullest listed filesystem's capacity column. */
export function parseDisk(out: string): number {
  const n = plainNumber(out);
  if (n !== undefined) return percent(n, "disk");
  const rows = dfRows(out);
  if (rows.length === 0) throw new Error("expected `df -P` output (a header, then lines with a Capacity column like 23%) or one number");
  return percent(fullest(rows).capacity, "disk");
}

/** What statfs(2) says of a filesystem (Node's fs.statfs gives these, counted in bsize blocks). */
export interface FsStats {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
}

/**
 * A filesystem's use as `df` counts it: used / (used + available to unprivileged users), so the
 * blocks reserved for root count as full. Two decimals where df rounds up to a whole percent.
 */
export function statfsPercent(s: FsStats): number {
  const used = s.blocks - s.bfree;
  const usable = used + s.bavail;
  if (!(usable > 0) || used < 0) throw new Error(`statfs gave no usable blocks (blocks ${s.blocks}, free ${s.bfree}, available ${s.bavail})`);
  return percent((100 * used) / usable, "disk");
}

/** Several paths' filesystems (as `df -P a b`): the fullest one's percentage and size in bytes. */
export function diskFromStatfs(stats: FsStats[]): { percent: number; totalBytes: number } {
  if (stats.length === 0) throw new Error("no filesystem to read");
  const best = fullest(stats.map((s) => ({ capacity: statfsPercent(s), bytes: s.blocks * s.bsize })));
  return { percent: best.capacity, totalBytes: best.bytes };
}

export const PARSERS = { cpu: parseCpu, mem: parseMem, hdd: parseDisk } as const;

/** /proc/meminfo's MemTotal in bytes; undefined for a command that printed only the percentage. */
export function memTotalBytes(out: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(out);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** `df -P`: the size in bytes of the filesystem parseDisk picked; undefined without one. */
export function diskTotalBytes(out: string): number | undefined {
  if (plainNumber(out) !== undefined) return undefined;
  const rows = dfRows(out);
  const kb = rows.length > 0 ? fullest(rows).kb : undefined;
  return kb === undefined ? undefined : kb * 1024;
}

/**
 * /proc/loadavg's line (`0.94 0.80 0.36 3/189 22142`) anywhere in the output: the 1, 5 and 15
 * minute load averages. The CPU probe prints it after its two /proc/stat lines; undefined
 * without it (a custom command, a kernel without the file).
 */
export function parseLoadavg(out: string): [number, number, number] | undefined {
  // A line that starts with three numbers: /proc/loadavg's (after the CPU probe's two reads,
  // or alone, as the facts read it). No /proc/stat line does: they start with a name.
  const m = /^[ \t]*(\d+(?:\.\d+)?)[ \t]+(\d+(?:\.\d+)?)[ \t]+(\d+(?:\.\d+)?)(?:[ \t]|$)/m.exec(out);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** The size behind a percentage (bytes), where the output tells it: RAM and disk, not CPU. */
export const TOTALS: Record<keyof typeof PARSERS, (out: string) => number | undefined> = { cpu: () => undefined, mem: memTotalBytes, hdd: diskTotalBytes };
