/**
 * `pnpm bench` stopped by the user mid-run (SIGTERM, as `kill` sends; Ctrl-C is SIGINT): it
 * stops the gateways and routers it started and drops its database and Redis keys, then exits
 * as the signal would (143), instead of leaving them running.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { REPO_ROOT } from "@pesan/cluster";
import { sql } from "./support/e2e.ts";

/** The pids of a process's children (Linux: /proc/<pid>/task/<pid>/children). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("SIGTERM during the steady phase stops the bench's processes and drops its database and keys", async () => {
  const bench = spawn(process.execPath, ["tools/cluster/src/bench.ts", "--pairs", "2", "--window", "4", "--seconds", "60", "--latency-seconds", "0", "--offline", "0", "--gateways", "1", "--routers", "1"], {
    cwd: REPO_ROOT,
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  bench.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => bench.once("exit", (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!err.includes("steady phase") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(err).toContain("steady phase");
  const db = /database (pesan_bench_[0-9a-f]+)/.exec(err)?.[1];
  const prefix = /Redis key prefix (\S+)/.exec(err)?.[1];
  expect([db, prefix]).toEqual([expect.any(String), expect.any(String)]);
  const started = childrenOf(bench.pid!);
  expect(started.length).toBeGreaterThanOrEqual(2); // the gateway and the router

  bench.kill("SIGTERM");
  expect(await exited).toBe(143);
  expect(started.filter(alive)).toEqual([]);
  expect(await sql(process.env.DATABASE_URL!, "SELECT datname FROM pg_database WHERE datname = $1", [db])).toEqual([]);
  const redis = new Redis(process.env.REDIS_URL!);
  try {
    expect(await redis.keys(`${prefix}*`)).toEqual([]);
  } finally {
    redis.disconnect();
  }
}, 120_000);
