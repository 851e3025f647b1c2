/**
 * The chat CLI's input history between runs: one line per command typed, oldest first, in
 * `$XDG_STATE_HOME/pesan/history` (else `~/.local/state/pesan/history`), at most HISTORY_MAX
 * lines, readable by its owner only. Lines that carry a password or a token (carriesSecret)
 * are never written.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { carriesSecret } from "./commands.ts";

export const HISTORY_MAX = 1000;

/** Where the history lives; XDG says a relative XDG_STATE_HOME is to be ignored. */
export function historyPath(env: NodeJS.ProcessEnv, home: string): string {
  const state = env.XDG_STATE_HOME;
  const base = state !== undefined && isAbsolute(state) ? state : join(home, ".local", "state");
  return join(base, "pesan", "history");
}

/** The lines worth keeping, oldest first: no secrets, no blank lines, the newest max. */
export function keptLines(lines: readonly string[], max = HISTORY_MAX): string[] {
  const kept = lines.filter((l) => l.trim().length > 0 && !carriesSecret(l) && !/[\r\n]/.test(l));
  return kept.slice(Math.max(0, kept.length - max));
}

/** The saved history, oldest first ([] when there is none yet). */
export function loadHistory(path: string, max = HISTORY_MAX): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return keptLines(text.split("\n"), max);
}

/** Replaces the file (written aside and renamed, so a crash never leaves half a file). */
export function saveHistory(path: string, lines: readonly string[], max = HISTORY_MAX): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const kept = keptLines(lines, max);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, kept.length > 0 ? `${kept.join("\n")}\n` : "", { mode: 0o600 });
  renameSync(tmp, path);
}
