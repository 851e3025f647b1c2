/**
 * `pnpm bench` stopped by the user mid-run (SIGTERM, as `kill` sends; Ctrl-C is SIGINT): it
 * stops the gateways and routers it started and drops its database and Redis keys, then exits
 * as the signal would (143), instead of leaving them running.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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

/** Processes whose environment names this database (the gateways and routers a bench started). */
function processesUsing(db: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, "utf8").includes(`/${db}`)) out.push(Number(d));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function startBench(): { bench: ReturnType<typeof spawn>; stderr: () => string; exited: Promise<number | null> } {
  const bench = spawn(process.execPath, ["tools/cluster/src/bench.ts", "--pairs", "2", "--window", "4", "--seconds", "60", "--latency-seconds", "0", "--offline", "0", "--gateways", "1", "--routers", "1"], {
    cwd: REPO_ROOT,
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  bench.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => bench.once("exit", (code) => resolve(code)));
  return { bench, stderr: () => err, exited };
}

async function waitFor(what: string, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!stderr().includes(what) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(stderr()).toContain(what);
}

test("SIGTERM while it starts its processes: those it had started are stopped too, the database dropped", async () => {
  const { bench, stderr, exited } = startBench();
  await waitFor("Redis key prefix", stderr);
  const db = /database (pesan_bench_[0-9a-f]+)/.exec(stderr())![1]!;
  bench.kill("SIGTERM");
  expect(await exited).toBe(143);
  expect(processesUsing(db).filter(alive)).toEqual([]);
  expect(await sql(process.env.DATABASE_URL!, "SELECT datname FROM pg_database WHERE datname = $1", [db])).toEqual([]);
}, 120_000);

test("SIGTERM during the steady phase stops the bench's processes and drops its database and keys", async () => {
  const { bench, stderr, exited } = startBench();
  await waitFor("steady phase", stderr);
  const err = stderr();
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
