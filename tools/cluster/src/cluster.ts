/**
 * Starts a cluster as separate processes (N gateways, M routers) against one Postgres and one
 * Redis, waits until each answers /healthz, and gives handles to stop, kill -9 and restart
 * them. Used by `pnpm cluster`, the integration tests and the benchmark.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** The workspace root, found from the working directory (jest and pnpm scripts run inside it). */
function findRepoRoot(from: string): string {
  let dir = resolve(from);
  while (!existsSync(join(dir, "pnpm-workspace.yaml"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`run this inside the pesan repository (no pnpm-workspace.yaml above ${from})`);
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = findRepoRoot(process.cwd());
const ENTRY = {
  gateway: join(REPO_ROOT, "services/udp-gateway/src/main.ts"),
  router: join(REPO_ROOT, "services/router/src/main.ts"),
  embedded: join(REPO_ROOT, "apps/embedded/src/main.ts"),
  monitor: join(REPO_ROOT, "services/monitor-bot/src/main.ts"),
  "peer-sync": join(REPO_ROOT, "services/peer-sync/src/main.ts"),
};

/**
 * Node flags each role runs with, the same as its `pnpm` script and its image (package.json's
 * "start", the Dockerfile's CMD), so tests and measurements run what users run. The embedded
 * mode runs PGlite's WASM on V8's baseline compiler only: optimizing its 9 MB of code took about
 * 550 MiB at the start and kept 60-100 MiB resident, for no faster messaging (README
 * "Performance").
 */
export const NODE_FLAGS: Record<keyof typeof ENTRY, readonly string[]> = {
  gateway: [],
  router: [],
  embedded: ["--liftoff-only"],
  monitor: [],
  "peer-sync": [],
};

/** What each role's /healthz says its service is. */
const SERVICE_NAME: Record<keyof typeof ENTRY, string> = {
  gateway: "udp-gateway",
  router: "router",
  embedded: "embedded",
  monitor: "monitor-bot",
  "peer-sync": "peer-sync",
};

export interface ClusterOptions {
  databaseUrl: string;
  redisUrl: string;
  gateways?: number;
  routers?: number;
  /** First gateway's UDP port (the others follow); 0 picks free ports. */
  udpPort?: number;
  busPrefix?: string;
  /** Extra environment for every process (e.g. SESSION_LEASE_MS). */
  env?: Record<string, string>;
  /** Where each process's log goes (one file per process); omitted: discarded. */
  logDir?: string;
  host?: string;
  readyTimeoutMs?: number;
}

export type Role = keyof typeof ENTRY;

const TAIL_CHARS = 4000;

/**
 * The environment of an embedded process (apps/embedded) on loopback ports and a data
 * directory of its own: PGlite and the in-process bus whatever the caller's environment says
 * (DATABASE_URL and REDIS_URL emptied), a cheap password hash, the monitor on monitorPort or off.
 */
export function embeddedEnv(o: { dataDir: string; udpPort: number; httpPort: number; monitorPort?: number }): Record<string, string> {
  return {
    DATA_DIR: o.dataDir,
    UDP_HOST: "127.0.0.1",
    UDP_PORT: String(o.udpPort),
    HTTP_PORT: String(o.httpPort),
    ...(o.monitorPort === undefined ? { MONITOR: "false" } : { MONITOR_PORT: String(o.monitorPort) }),
    // Registration's hashing cost is not what these processes are for; the default only slows set-up.
    PASSWORD_HASH_COST: "10",
    DATABASE_URL: "",
    REDIS_URL: "",
  };
}

export class ServiceProcess {
  readonly role: Role;
  readonly id: string;
  readonly env: Record<string, string>;
  readonly httpPort: number;
  readonly udpPort: number | undefined;
  proc: ChildProcess | undefined;
  private readonly logFile: string | undefined;
  private log: WriteStream | undefined;
  /** The end of the process's output, for the error when it dies during start-up. */
  private tail = "";
  exited: Promise<number | null> = Promise.resolve(null);
  /** Flags given to node before the entry point; the role's NODE_FLAGS unless changed before start(). */
  nodeFlags: readonly string[];

  constructor(role: Role, id: string, env: Record<string, string>, httpPort: number, udpPort: number | undefined, logFile: string | undefined) {
    this.role = role;
    this.id = id;
    this.env = env;
    this.httpPort = httpPort;
    this.udpPort = udpPort;
    this.logFile = logFile;
    this.nodeFlags = NODE_FLAGS[role];
  }

  start(): void {
    this.log = this.logFile ? createWriteStream(this.logFile, { flags: "a" }) : undefined;
    this.tail = "";
    const proc = spawn(process.execPath, [...this.nodeFlags, ENTRY[this.role]], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString("utf8")).slice(-TAIL_CHARS);
    };
    for (const out of [proc.stdout, proc.stderr]) {
      out?.on("data", keep);
      if (this.log) out?.pipe(this.log, { end: false });
    }
    this.proc = proc;
    this.exited = new Promise((res) => proc.once("exit", (code) => res(code)));
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) {
        await this.exited;
        throw new Error(`${this.id} exited during start-up${this.logFile ? ` (see ${this.logFile})` : ""}; its last output:\n${this.tail}`);
      }
      try {
        const r = await fetch(`http://127.0.0.1:${this.httpPort}/healthz`, { signal: AbortSignal.timeout(1000) });
        // Another process that got the same free port number must not pass for this one.
        const body = (await r.json().catch(() => ({}))) as { service?: string };
        if (r.status === 200 && (body.service === undefined || body.service === SERVICE_NAME[this.role])) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.id} not healthy after ${timeoutMs} ms`);
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.proc!.kill("SIGTERM");
    const t = setTimeout(() => this.proc?.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
    this.log?.end();
  }

  async kill9(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill("SIGKILL");
    await this.exited;
  }

  async restart(timeoutMs = 20_000): Promise<void> {
    this.start();
    await this.waitReady(timeoutMs);
  }
}

export interface Cluster {
  gateways: ServiceProcess[];
  routers: ServiceProcess[];
  /** host:port of each gateway, in order. */
  addresses: string[];
  stop(): Promise<void>;
}

/**
 * Port numbers for services the caller starts next. Not the kernel's "bind port 0": that hands
 * out numbers from the ephemeral range (ip_local_port_range, 32768-60999 by default), which every
 * outgoing connection and client socket also draws from, so between our release and the
 * service's bind another process's socket could take it (seen in CI: a gateway dying with
 * EADDRINUSE). Instead the numbers come from below that range, each jest worker (and each other
 * process, by pid) in its own slice, and each is checked free for both TCP and UDP.
 */
const PORT_BASE = 15_000;
const PORT_SLICE = 2_000;
const PORT_SLICES = 8;
let nextPort = -1;

function portSlice(): number {
  const worker = Number(process.env.JEST_WORKER_ID ?? 0);
  return worker > 0 ? (worker - 1) % PORT_SLICES : (process.pid % (PORT_SLICES - 2)) + 2;
}

async function isFree(port: number): Promise<boolean> {
  const { createServer } = await import("node:net");
  const { createSocket } = await import("node:dgram");
  const tcp = await new Promise<boolean>((r) => {
    const s = createServer();
    s.once("error", () => r(false));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => s.close(() => r(true)));
  });
  if (!tcp) return false;
  return new Promise<boolean>((r) => {
    const s = createSocket("udp4");
    s.once("error", () => {
      s.close();
      r(false);
    });
    s.bind(port, "127.0.0.1", () => s.close(() => r(true)));
  });
}

/** `n` port numbers free for both TCP and UDP on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const base = PORT_BASE + portSlice() * PORT_SLICE;
  if (nextPort < 0) nextPort = Math.floor(Math.random() * PORT_SLICE);
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (tries > PORT_SLICE) throw new Error(`no free port left in ${base}-${base + PORT_SLICE - 1}`);
    const port = base + (nextPort++ % PORT_SLICE);
    if (await isFree(port)) ports.push(port);
  }
  return ports;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const nG = o.gateways ?? 2;
  const nR = o.routers ?? 2;
  const host = o.host ?? "127.0.0.1";
  const prefix = o.busPrefix ?? "pesan:";
  const udpPorts = o.udpPort ? Array.from({ length: nG }, (_, i) => o.udpPort! + i) : await freePorts(nG);
  const httpPorts = await freePorts(nG + nR);
  if (o.logDir) mkdirSync(o.logDir, { recursive: true });
  const base = { DATABASE_URL: o.databaseUrl, REDIS_URL: o.redisUrl, BUS_PREFIX: prefix, HTTP_HOST: "127.0.0.1", ...o.env };
  const tag = prefix.replace(/[^A-Za-z0-9]/g, "");
  const gateways = udpPorts.map((port, i) => {
    const id = `gw${i + 1}-${tag}`.slice(0, 64);
    const env = { ...base, GATEWAY_ID: id, UDP_HOST: host, UDP_PORT: String(port), HTTP_PORT: String(httpPorts[i]) };
    return new ServiceProcess("gateway", id, env, httpPorts[i]!, port, o.logDir ? join(o.logDir, `gateway-${i + 1}.log`) : undefined);
  });
  const routers = Array.from({ length: nR }, (_, i) => {
    const id = `router${i + 1}-${tag}`.slice(0, 64);
    // A restarted router gets a fresh consumer name from its pid; ROUTER_ID stays unset.
    const env: Record<string, string> = { ...base, HTTP_PORT: String(httpPorts[nG + i]), PUBLIC_ADDRESS: o.env?.PUBLIC_ADDRESS ?? `${host}:${udpPorts[0]}` };
    return new ServiceProcess("router", id, env, httpPorts[nG + i]!, undefined, o.logDir ? join(o.logDir, `router-${i + 1}.log`) : undefined);
  });
  const all = [...routers, ...gateways];
  const cluster: Cluster = {
    gateways,
    routers,
    addresses: gateways.map((g) => `${host}:${g.udpPort}`),
    stop: async () => {
      await Promise.all(all.map((p) => p.stop()));
    },
  };
  try {
    for (const p of all) p.start();
    await Promise.all(all.map((p) => p.waitReady(o.readyTimeoutMs ?? 30_000)));
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}
