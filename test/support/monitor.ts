/** Helpers for the monitor-bot tests: the package's directory, polling, action output files. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "@pesan/cluster";
import { createLogger, type Logger } from "@pesan/shared/observability";

export const MONITOR_DIR = join(REPO_ROOT, "services/monitor-bot");
export const MONITOR_MAIN = join(MONITOR_DIR, "src/main.ts");

/** Silent unless MONITOR_TEST_LOG names a level (e.g. MONITOR_TEST_LOG=debug npx jest test/monitor-ssh.test.ts). */
export function testLogger(): Logger {
  return createLogger("monitor-test", (process.env.MONITOR_TEST_LOG as "debug" | undefined) ?? "silent");
}

/** Polls until fn returns something other than undefined/false; fails naming what it waited for. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Non-empty lines of a file an action appends to (none yet: []). */
export function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

/** What every monitor test config starts with: any free HTTP port, the test's database, history written every 100 ms. */
export function monitorBase(instance: string, databaseUrl: string) {
  return { instance, http: { port: 0 }, database: { url: databaseUrl }, history: { flushEvery: 100 } };
}

/** Thresholds no reading reaches: no threshold alert or action on a busy test machine. */
export const NO_THRESHOLDS = { cpu: { high: 101 }, mem: { high: 101 }, hdd: { high: 101 } };
