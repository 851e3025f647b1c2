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

export class ServiceProcess {
  readonly role: Role;
  readonly id: string;
  readonly env: Record<string, string>;
  readonly httpPort: number;
  readonly udpPort: number | undefined;
  proc: ChildProcess | undefined;
  private readonly logFile: string | undefined;
  private log: WriteStream | undefined;
  exited: Promise<number | null> = Promise.resolve(null);

  constructor(role: Role, id: string, env: Record<string, string>, httpPort: number, udpPort: number | undefined, logFile: string | undefined) {
    this.role = role;
    this.id = id;
    this.env = env;
    this.httpPort = httpPort;
    this.udpPort = udpPort;
    this.logFile = logFile;
  }

  start(): void {
    this.log = this.logFile ? createWriteStream(this.logFile, { flags: "a" }) : undefined;
    const proc = spawn(process.execPath, [ENTRY[this.role]], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", this.log ? "pipe" : "ignore", this.log ? "pipe" : "ignore"],
    });
    if (this.log) {
      proc.stdout?.pipe(this.log, { end: false });
      proc.stderr?.pipe(this.log, { end: false });
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
      if (!this.running) throw new Error(`${this.id} exited during start-up${this.logFile ? ` (see ${this.logFile})` : ""}`);
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

/** Free TCP/UDP port numbers are taken from the kernel by binding port 0 and releasing it. */
export async function freePorts(n: number, kind: "udp" | "tcp" = "tcp"): Promise<number[]> {
  const ports: number[] = [];
  if (kind === "udp") {
    const { createSocket } = await import("node:dgram");
    for (let i = 0; i < n; i++) {
      const s = createSocket("udp4");
      await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
      ports.push(s.address().port);
      s.close();
    }
    return ports;
  }
  const { createServer } = await import("node:net");
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import("node:net").Server>((r) => { const s = createServer(); s.listen(0, "127.0.0.1", () => r(s)); })),
  );
  for (const s of servers) ports.push((s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const nG = o.gateways ?? 2;
  const nR = o.routers ?? 2;
  const host = o.host ?? "127.0.0.1";
  const prefix = o.busPrefix ?? "pesan:";
  const udpPorts = o.udpPort ? Array.from({ length: nG }, (_, i) => o.udpPort! + i) : await freePorts(nG, "udp");
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
