/**
 * Redis Sentinel of a test's own: a primary, two replicas and three sentinels, real
 * `redis-server` processes (`--sentinel` for the sentinels) on loopback ports from freePorts, in
 * a temp directory, append-only file on. The test kills the primary with SIGKILL and waits for
 * the sentinels to promote a replica; close() kills every process left and removes the directory.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePorts } from "@pesan/cluster";
import { RedisProcess } from "./throwaway.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const MASTER_NAME = "pesanha";
/** How long a primary may not answer before a sentinel calls it down (the Redis default is 30 s). */
export const DOWN_AFTER_MS = 1000;

/** Runs one command on a fresh connection (no retries: the caller polls). */
async function ask<T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, logs: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`redis-ha: ${what} not within ${timeoutMs} ms${last ? ` (${String(last)})` : ""}\n${logs()}`);
    await sleep(100);
  }
}

function info(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export class RedisSentinelSet {
  readonly dir: string;
  readonly servers: RedisProcess[];
  readonly sentinels: RedisProcess[];
  private closed = false;

  private constructor(dir: string, serverPorts: number[], sentinelPorts: number[]) {
    this.dir = dir;
    this.servers = serverPorts.map((p, i) => new RedisProcess(p, join(dir, `redis-${i}`)));
    this.sentinels = sentinelPorts.map((p, i) => new RedisProcess(p, join(dir, `sentinel-${i}`)));
  }

  /** Starts the set and waits until the replicas are in sync and every sentinel knows the others and both replicas. */
  static async create(): Promise<RedisSentinelSet> {
    const dir = mkdtempSync(join(tmpdir(), "pesan-redis-ha-"));
    const ports = await freePorts(6);
    const set = new RedisSentinelSet(dir, ports.slice(0, 3), ports.slice(3));
    try {
      await set.start();
    } catch (e) {
      await set.close();
      throw e;
    }
    return set;
  }

  /** The REDIS_URL of the set: every sentinel, and the master's name. */
  get url(): string {
    return `redis+sentinel://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")}/${MASTER_NAME}`;
  }

  private async start(): Promise<void> {
    const primary = this.servers[0]!;
    for (const [i, s] of this.servers.entries()) {
      s.start([
        "--port", String(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--logfile", join(s.dir, "log"),
        "--appendonly", "yes", "--save", "",
        // The initial sync streams the data set instead of writing an RDB first, and starts at once.
        "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
        // As docs/redis-ha.md advises: a primary cut off from every replica refuses writes
        // (NOREPLICAS) after 10 s instead of taking writes that its demotion will discard.
        "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10",
        ...(i === 0 ? [] : ["--replicaof", "127.0.0.1", String(primary.port)]),
      ]);
    }
    await waitUntil("replicas in sync", 20_000, async () => {
      const replicas = await Promise.all(this.servers.slice(1).map((s) => ask(s.port, async (c) => info(await c.info("replication")))));
      return replicas.every((r) => r.master_link_status === "up");
    }, () => this.logs());
    for (const s of this.sentinels) {
      const conf = join(s.dir, "sentinel.conf");
      mkdirSync(s.dir, { recursive: true });
      // A sentinel rewrites its file (the replicas and sentinels it found, the current epoch).
      writeFileSync(
        conf,
        [
          `port ${s.port}`,
          "bind 127.0.0.1",
          `dir ${s.dir}`,
          `logfile ${join(s.dir, "log")}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${MASTER_NAME} 10000`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          "",
        ].join("\n"),
      );
      s.start([conf, "--sentinel"]);
    }
    await waitUntil("sentinels know each other and both replicas", 30_000, async () => {
      const views = await Promise.all(
        this.sentinels.map((s) =>
          ask(s.port, async (c) => ({
            replicas: ((await c.call("SENTINEL", "REPLICAS", MASTER_NAME)) as unknown[]).length,
            sentinels: ((await c.call("SENTINEL", "SENTINELS", MASTER_NAME)) as unknown[]).length,
          })),
        ),
      );
      return views.every((v) => v.replicas === 2 && v.sentinels === 2);
    }, () => this.logs());
  }

  /** The port of the primary as the sentinels name it now (a majority agreeing). */
  async primaryPort(): Promise<number | undefined> {
    const votes = new Map<number, number>();
    for (const s of this.sentinels.filter((x) => x.running)) {
      try {
        const addr = (await ask(s.port, (c) => c.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME))) as [string, string] | null;
        if (addr) votes.set(Number(addr[1]), (votes.get(Number(addr[1])) ?? 0) + 1);
      } catch {
        // that sentinel does not answer; the others decide
      }
    }
    for (const [port, n] of votes) if (n >= 2) return port;
    return undefined;
  }

  /** SIGKILL to the current primary; returns its port. */
  async killPrimary(): Promise<number> {
    const port = await this.primaryPort();
    const p = this.servers.find((s) => s.port === port && s.running);
    if (!p) throw new Error(`redis-ha: no running primary (sentinels say ${port})`);
    await p.kill();
    return p.port;
  }

  /** The server on that port (to stop, continue or restart it). */
  server(port: number): RedisProcess {
    const s = this.servers.find((x) => x.port === port);
    if (!s) throw new Error(`redis-ha: no server on ${port}`);
    return s;
  }

  /** Waits until the server on `port` is a replica of the current primary, in sync. */
  async waitReplica(port: number, timeoutMs = 30_000): Promise<void> {
    await waitUntil(`:${port} a replica in sync`, timeoutMs, async () => {
      const primary = await this.primaryPort();
      const r = await ask(port, async (c) => info(await c.info("replication")));
      return r.role === "slave" && Number(r.master_port) === primary && r.master_link_status === "up";
    }, () => this.logs());
  }

  /** Waits until the sentinels name another primary than `old` and it answers as a master. */
  async waitPromoted(old: number, timeoutMs = 30_000): Promise<number> {
    let port: number | undefined;
    await waitUntil("a replica promoted", timeoutMs, async () => {
      port = await this.primaryPort();
      if (port === undefined || port === old) return false;
      return (await ask(port, async (c) => info(await c.info("replication")).role)) === "master";
    }, () => this.logs());
    return port!;
  }

  /** The sentinels' and servers' logs, for a failure message. */
  logs(): string {
    return [...this.servers, ...this.sentinels].map((s) => `--- ${s.dir}\n${s.log().split("\n").slice(-15).join("\n")}`).join("\n");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.sentinels, ...this.servers].map((s) => s.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** How long a cluster node may not answer before the others call it failed. */
export const NODE_TIMEOUT_MS = 1000;

interface ClusterNodeLine {
  port: number;
  master: boolean;
  failed: boolean;
  slots: Array<[number, number]>;
}

function clusterNodes(text: string): ClusterNodeLine[] {
  return text
    .trim()
    .split("\n")
    .map((line) => {
      const f = line.split(" ");
      const flags = f[2]!.split(",");
      const slots = f.slice(8).filter((s) => /^\d+(-\d+)?$/.test(s)).map((s) => s.split("-").map(Number) as [number, number?]).map(([a, b]) => [a, b ?? a] as [number, number]);
      return { port: Number(f[1]!.split("@")[0]!.split(":").pop()), master: flags.includes("master"), failed: flags.some((x) => x === "fail" || x === "fail?"), slots };
    });
}

/**
 * Redis Cluster of a test's own: six `redis-server --cluster-enabled yes` processes on loopback
 * (their cluster bus ports from freePorts too, not port + 10000), made into three masters with a
 * replica each by `redis-cli --cluster create --cluster-replicas 1`.
 */
export class RedisClusterSet {
  readonly dir: string;
  readonly servers: RedisProcess[];
  private readonly busPorts: number[];
  private closed = false;

  private constructor(dir: string, ports: number[], busPorts: number[]) {
    this.dir = dir;
    this.busPorts = busPorts;
    this.servers = ports.map((p, i) => new RedisProcess(p, join(dir, `node-${i}`)));
  }

  static async create(): Promise<RedisClusterSet> {
    const dir = mkdtempSync(join(tmpdir(), "pesan-redis-cluster-"));
    const ports = await freePorts(12);
    const set = new RedisClusterSet(dir, ports.slice(0, 6), ports.slice(6));
    try {
      await set.start();
    } catch (e) {
      await set.close();
      throw e;
    }
    return set;
  }

  get url(): string {
    return `redis+cluster://${this.servers.map((s) => `127.0.0.1:${s.port}`).join(",")}`;
  }

  private async start(): Promise<void> {
    for (const [i, s] of this.servers.entries()) {
      s.start([
        "--port", String(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--logfile", join(s.dir, "log"),
        "--appendonly", "yes", "--save", "",
        "--cluster-enabled", "yes", "--cluster-port", String(this.busPorts[i]), "--cluster-config-file", join(s.dir, "nodes.conf"),
        "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
        // Any replica may take over, however long it was cut off from its master.
        "--cluster-replica-validity-factor", "0",
        "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
      ]);
    }
    await waitUntil("nodes up", 20_000, async () => (await Promise.all(this.servers.map((s) => ask(s.port, (c) => c.ping())))).every((r) => r === "PONG"), () => this.logs());
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn("redis-cli", ["--cluster", "create", ...this.servers.map((s) => `127.0.0.1:${s.port}`), "--cluster-replicas", "1", "--cluster-yes"], { stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      p.stdout.on("data", (d: Buffer) => (text += d.toString()));
      p.stderr.on("data", (d: Buffer) => (text += d.toString()));
      p.once("error", reject);
      p.once("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`redis-cli --cluster create exited ${code}:\n${text}`))));
    });
    if (!/All 16384 slots covered/.test(out)) throw new Error(`redis-cli --cluster create:\n${out}`);
    await waitUntil("cluster ok on every node, each master with a replica in sync", 30_000, async () => {
      const states = await Promise.all(this.servers.map((s) => ask(s.port, async (c) => ({ info: info(await c.call("CLUSTER", "INFO") as string), repl: info(await c.info("replication")) }))));
      return states.every((x) => x.info.cluster_state === "ok" && x.info.cluster_known_nodes === "6" && (x.repl.role === "master" ? x.repl.connected_slaves === "1" : x.repl.master_link_status === "up"));
    }, () => this.logs());
  }

  private async nodes(): Promise<ClusterNodeLine[]> {
    for (const s of this.servers.filter((x) => x.running)) {
      try {
        return clusterNodes((await ask(s.port, (c) => c.call("CLUSTER", "NODES"))) as string);
      } catch {
        // ask the next one
      }
    }
    throw new Error("redis-cluster: no node answers");
  }

  /** The port of the master serving `key`'s slot now (failed masters left out). */
  async masterOf(key: string): Promise<number | undefined> {
    const live = this.servers.find((x) => x.running)!;
    const slot = (await ask(live.port, (c) => c.call("CLUSTER", "KEYSLOT", key))) as number;
    return (await this.nodes()).find((n) => n.master && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b))?.port;
  }

  /** SIGKILL to the master serving `key`; returns its port. */
  async killMasterOf(key: string): Promise<number> {
    const port = await this.masterOf(key);
    const p = this.servers.find((s) => s.port === port && s.running);
    if (!p) throw new Error(`redis-cluster: no running master for ${key} (${port})`);
    await p.kill();
    return p.port;
  }

  /** Waits until another node than `old` is master of `key`'s slot and every live node says the cluster is ok. */
  async waitPromoted(key: string, old: number, timeoutMs = 30_000): Promise<number> {
    let port: number | undefined;
    await waitUntil(`a replica promoted for ${key}`, timeoutMs, async () => {
      port = await this.masterOf(key);
      if (port === undefined || port === old) return false;
      const states = await Promise.all(this.servers.filter((s) => s.running).map((s) => ask(s.port, async (c) => info((await c.call("CLUSTER", "INFO")) as string).cluster_state)));
      return states.every((x) => x === "ok");
    }, () => this.logs());
    return port!;
  }

  logs(): string {
    return this.servers.map((s) => `--- ${s.dir}\n${s.log().split("\n").slice(-15).join("\n")}`).join("\n");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.servers.map((s) => s.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
