/**
 * A Postgres cluster and a redis-server of a test's own, on their own loopback ports in a temp
 * directory, so a test may stop and restart them without touching the shared ones that every
 * other test file uses. Postgres comes from Debian's binaries (/usr/lib/postgresql/<v>/bin);
 * as root, initdb and postgres run as the `postgres` user (they refuse to run as root).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "@pesan/cluster";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The newest Postgres install's bin directory, or undefined when none is installed. */
export function postgresBinDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "pg_ctl")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], "bin");
}

export function redisServerAvailable(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function asPostgresUser(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

export class ThrowawayPostgres {
  readonly port: number;
  readonly dir: string;
  private readonly bin: string;
  private running = false;

  private constructor(bin: string, dir: string, port: number) {
    this.bin = bin;
    this.dir = dir;
    this.port = port;
  }

  /** initdb (trust auth, user postgres) and start; the cluster lives until destroy(). */
  static async create(): Promise<ThrowawayPostgres> {
    const bin = postgresBinDir();
    if (!bin) throw new Error("no Postgres binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)");
    const dir = mkdtempSync(join(tmpdir(), "pesan-pg-"));
    if (process.getuid?.() === 0) chownSync(dir, Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), Number(execFileSync("id", ["-g", "postgres"]).toString().trim()));
    const [port] = await freePorts(1);
    const pg = new ThrowawayPostgres(bin, dir, port!);
    const [cmd, args] = asPostgresUser(join(bin, "initdb"), ["-D", join(dir, "data"), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]);
    execFileSync(cmd, args, { stdio: "ignore" });
    await pg.start();
    return pg;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private pgCtl(args: string[]): void {
    const [cmd, a] = asPostgresUser(join(this.bin, "pg_ctl"), ["-D", join(this.dir, "data"), ...args]);
    execFileSync(cmd, a, { stdio: "ignore" });
  }

  async start(): Promise<void> {
    // fsync off: the test restarts the server, not the machine; -k: its socket stays in our dir.
    this.pgCtl(["-w", "-t", "60", "-l", join(this.dir, "log"), "-o", `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir} -c fsync=off -c max_connections=100`, "start"]);
    this.running = true;
  }

  /** Like a crash: every backend dies at once, and the next start runs crash recovery. */
  async stopImmediate(): Promise<void> {
    this.pgCtl(["-w", "-m", "immediate", "stop"]);
    this.running = false;
  }

  async destroy(): Promise<void> {
    if (this.running) {
      try {
        this.pgCtl(["-w", "-m", "immediate", "stop"]);
      } catch {
        // already down
      }
      this.running = false;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One redis-server process in a directory of its own: started, signalled, killed, restarted as it was. */
export class RedisProcess {
  readonly port: number;
  readonly dir: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private args: string[] = [];

  constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  start(args: string[]): void {
    mkdirSync(this.dir, { recursive: true });
    this.args = args;
    const proc = spawn("redis-server", args, { stdio: "ignore" });
    this.proc = proc;
    this.exited = new Promise((r) => proc.once("exit", () => r()));
  }

  /** Starts it again as it was first started (a server comes back with its append-only file). */
  restart(): void {
    if (!this.proc) this.start(this.args);
  }

  /** SIGSTOP / SIGCONT: alive, its connections open, but silent (a partition, a long pause), and back. */
  signal(sig: "SIGSTOP" | "SIGCONT"): void {
    this.proc?.kill(sig);
  }

  async kill(): Promise<void> {
    this.proc?.kill("SIGKILL");
    // A stopped process dies of SIGKILL too; SIGCONT only so its exit is reported at once.
    this.proc?.kill("SIGCONT");
    await this.exited;
    this.proc = undefined;
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, "log"), "utf8");
    } catch {
      return "";
    }
  }
}

export class ThrowawayRedis {
  readonly port: number;
  readonly dir: string;
  private readonly proc: RedisProcess;

  private constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.proc = new RedisProcess(port, dir);
  }

  /** With the append-only file on (fsync every second), so what it acknowledged survives a kill. */
  static async create(): Promise<ThrowawayRedis> {
    const dir = mkdtempSync(join(tmpdir(), "pesan-redis-"));
    const [port] = await freePorts(1);
    const r = new ThrowawayRedis(dir, port!);
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc.start(["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--appendonly", "yes", "--save", "", "--logfile", join(this.dir, "log")]);
    const { Redis } = await import("ioredis");
    const deadline = Date.now() + 20_000;
    for (;;) {
      const c = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on("error", () => undefined);
      try {
        await c.connect();
        // Loading the append-only file answers LOADING until done.
        if ((await c.ping()) === "PONG") return;
      } catch {
        if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not come up\n${this.proc.log()}`);
      } finally {
        c.disconnect();
      }
      await sleep(50);
    }
  }

  /** SIGSTOP / SIGCONT: a Redis that keeps its connections but does not answer, and back. */
  signal(sig: "SIGSTOP" | "SIGCONT"): void {
    this.proc.signal(sig);
  }

  /** SIGKILL: no chance to save anything more than the append-only file already holds. */
  async kill(): Promise<void> {
    await this.proc.kill();
  }

  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
