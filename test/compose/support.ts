/**
 * Drives the committed Compose files with the real Docker engine and docker-compose, as a user
 * would: images from `./pesan images`, one project of our own per run (`-p`, so nothing else on
 * the machine is touched), ports published on 127.0.0.1 only, `down -v` at the end.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { REPO_ROOT } from "@pesan/cluster";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Progress on long steps goes straight to the terminal (jest would hold console output back). */
export function progress(msg: string): void {
  process.stderr.write(`[compose ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to the end; never throws (the caller decides what a failure means). */
export function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; echo?: string; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: REPO_ROOT, env: o.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      // Long steps (image builds, `up`) show their progress lines as they come.
      if (o.echo) for (const l of d.toString().split("\n")) if (l.trim()) progress(`${o.echo}: ${l.trim()}`);
    });
    const timer = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs ?? 120_000);
    p.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: stderr + String(e) });
    });
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    // A command that exits before reading its stdin (docker ps, polled often) makes this write
    // fail with EPIPE; its result is its exit code and output, so the error is not one.
    p.stdin.on("error", () => undefined);
    p.stdin.end(o.input ?? "");
  });
}

export async function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run("docker", args, { timeoutMs });
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export async function dockerAnswers(): Promise<boolean> {
  return (await run("docker", ["info"], { timeoutMs: 10_000 })).code === 0;
}

/**
 * `./pesan images` (through its script, without touching .env): builds what is missing, and
 * returns the base image selection (PESAN_*_IMAGE) to hand to docker-compose. `ha`: also the
 * Patroni image of docker-compose.ha.yml (`--ha`).
 */
export async function ensureImages(o: { ha?: boolean } = {}): Promise<{ env: Record<string, string>; seconds: number }> {
  const t0 = Date.now();
  const r = await run(join(REPO_ROOT, "tools/images/build.sh"), ["--no-env-file", "--print-env", ...(o.ha ? ["--ha"] : [])], { timeoutMs: 30 * 60_000, echo: "images" });
  if (r.code !== 0) throw new Error(`./pesan images${o.ha ? " --ha" : ""} failed:\n${r.stderr.slice(-3000)}`);
  const env: Record<string, string> = {};
  for (const l of r.stdout.split("\n")) {
    const m = /^(PESAN_\w+_IMAGE)=(\S+)$/.exec(l);
    if (m) env[m[1]!] = m[2]!;
  }
  return { env, seconds: (Date.now() - t0) / 1000 };
}

export interface Container {
  id: string;
  name: string;
  service: string;
  status: string;
  health: string | undefined;
  startedAt: string;
  restartCount: number;
  hostname: string;
  ip: string;
}

interface Inspect {
  Id: string;
  Name: string;
  RestartCount: number;
  Config: { Hostname: string; Labels: Record<string, string> };
  State: { Status: string; StartedAt: string; Health?: { Status: string } };
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
}

export const randomSecret = (): string => randomBytes(16).toString("hex");

export class ComposeProject {
  readonly name: string;
  readonly file: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(file: string, label: string, env: Record<string, string>) {
    this.file = join(REPO_ROOT, file);
    // Unique per run: a crashed earlier run cannot collide, and nothing else is touched.
    this.name = `pesane2e${label}${randomBytes(3).toString("hex")}`;
    // Compose also reads the repository's .env; what we pass here wins over it.
    this.env = { ...process.env, ...env, COMPOSE_PROJECT_NAME: this.name };
  }

  async compose(args: string[], o: { timeoutMs?: number; echo?: boolean } = {}): Promise<string> {
    const r = await run("docker-compose", ["-f", this.file, "-p", this.name, ...args], { env: this.env, timeoutMs: o.timeoutMs ?? 300_000, ...(o.echo ? { echo: args[0] } : {}) });
    if (r.code !== 0) throw new Error(`docker-compose ${args.join(" ")} failed (${r.code}):\n${r.stderr.slice(-4000)}`);
    return r.stdout;
  }

  async containers(): Promise<Container[]> {
    const ids = (await docker(["ps", "-aq", "--filter", `label=com.docker.compose.project=${this.name}`])).split("\n").filter(Boolean);
    if (ids.length === 0) return [];
    const all = JSON.parse(await docker(["inspect", ...ids])) as Inspect[];
    return all
      .map((c) => ({
        id: c.Id,
        name: c.Name.replace(/^\//, ""),
        service: c.Config.Labels["com.docker.compose.service"] ?? "",
        status: c.State.Status,
        health: c.State.Health?.Status,
        startedAt: c.State.StartedAt,
        restartCount: c.RestartCount,
        hostname: c.Config.Hostname,
        // The project's default network (the one every service but etcd is on; the host reaches
        // it), else the only one.
        ip: (c.NetworkSettings.Networks[`${this.name}_default`] ?? Object.values(c.NetworkSettings.Networks)[0])?.IPAddress ?? "",
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async service(name: string): Promise<Container[]> {
    return (await this.containers()).filter((c) => c.service === name);
  }

  /** Waits until every container runs and each one with a healthcheck says healthy. */
  async waitHealthy(timeoutMs: number, expected?: number): Promise<Container[]> {
    const deadline = Date.now() + timeoutMs;
    let last: Container[] = [];
    let shown = "";
    for (;;) {
      last = await this.containers();
      const waiting = last.filter((c) => c.status !== "running" || (c.health !== undefined && c.health !== "healthy"));
      if (waiting.length === 0 && (expected === undefined || last.length === expected)) return last;
      const now = waiting.map((c) => `${c.service}:${c.health ?? c.status}`).join(" ");
      if (now !== shown) progress(`waiting for ${now || `${expected} containers`}`);
      shown = now;
      if (Date.now() > deadline) throw new Error(`not healthy within ${timeoutMs} ms: ${waiting.map((c) => `${c.name} ${c.status}/${c.health}`).join(", ")}`);
      await sleep(500);
    }
  }

  async logs(): Promise<string> {
    const r = await run("docker-compose", ["-f", this.file, "-p", this.name, "logs", "--no-color", "--tail", "30"], { env: this.env });
    return r.stdout;
  }

  /** Always in teardown: containers, networks and volumes of this project go. */
  async down(): Promise<void> {
    progress(`${this.name}: down -v`);
    const r = await run("docker-compose", ["-f", this.file, "-p", this.name, "down", "-v", "--remove-orphans", "-t", "5"], { env: this.env, timeoutMs: 180_000 });
    if (r.code !== 0) progress(`down -v failed: ${r.stderr.slice(-1000)}`);
  }
}

/** A bridge network of the test's own (a fake the containers must reach listens on its gateway). */
export async function createNetwork(name: string): Promise<{ name: string; gateway: string }> {
  await docker(["network", "create", "--driver", "bridge", name]);
  const gateway = (await docker(["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", name])).trim();
  return { name, gateway };
}

export async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
