/**
 * Several linked clusters on one machine for the peer-sync tests: each with its own database,
 * key prefix, gateway + router processes (optional) and a peer-sync process, all on 127.0.0.1.
 * Every pair of clusters shares one fresh key.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePorts, ServiceProcess, startCluster, type Cluster } from "@pesan/cluster";
import { createTestDatabase, deleteRedisKeys, uniquePrefix, type TestDatabase } from "./db.ts";
import { startLatencyProxy, type LatencyProxy } from "./latency-proxy.ts";
import { RawClient } from "./udp.ts";

export interface LinkedCluster {
  name: string;
  db: TestDatabase;
  prefix: string;
  /** Gateway + router processes; undefined when started with `routers: false`. */
  cluster: Cluster | undefined;
  peerSync: ServiceProcess;
  /** Where its clients go (its gateway). */
  address: string;
  /** Where its peers call it (through a latency proxy when `slowSync` names it). */
  syncUrl: string;
  /** Where its peer-sync listens. */
  syncPort: number;
}

export interface LinkedClustersOptions {
  names: string[];
  /** Start a gateway and a router per cluster (default true), or only for the clusters named. */
  routers?: boolean | string[];
  intervalMs?: number;
  /** Extra environment for the peer-sync processes. */
  env?: Record<string, string>;
  /** Extra environment per cluster for its routers (e.g. QUOTA). */
  routerEnv?: (name: string) => Record<string, string>;
  /** Whose peer-sync processes to start (default all); the others stay configured but silent. */
  start?: string[];
  /** Serve and call https with these PEM files. */
  tls?: { cert: string; key: string; ca: string };
  /**
   * Clusters whose sync endpoint is farther away: name -> ms added to every request to it
   * (a latency proxy in front of it; its peers' PEERS and its own SYNC_URL name the proxy).
   */
  slowSync?: Record<string, number>;
  /** Clusters in no one's PEERS, with no PEERS of their own (they join by invite). */
  unlinked?: string[];
}

export interface LinkedClusters {
  clusters: LinkedCluster[];
  logDir: string;
  /** The key shared by two clusters. */
  keyOf(a: string, b: string): string;
  get(name: string): LinkedCluster;
  stop(keepLogs?: boolean): Promise<void>;
}

const pairId = (a: string, b: string) => [a, b].sort().join("|");

export async function startLinkedClusters(o: LinkedClustersOptions): Promise<LinkedClusters> {
  const n = o.names.length;
  const withRouters = (name: string) => (Array.isArray(o.routers) ? o.routers.includes(name) : (o.routers ?? true));
  const logDir = mkdtempSync(join(tmpdir(), "pesan-peers-"));
  const keys = new Map<string, string>();
  for (const a of o.names) for (const b of o.names) if (a < b) keys.set(pairId(a, b), randomBytes(32).toString("hex"));
  const keyOf = (a: string, b: string) => keys.get(pairId(a, b))!;
  const scheme = o.tls ? "https" : "http";
  const dbs = await Promise.all(o.names.map((name) => createTestDatabase(`peer${name}`)));
  const clusters: LinkedCluster[] = [];
  // Everything started so far, so a failed start stops what did come up.
  const running: Cluster[] = [];
  const proxies: LatencyProxy[] = [];
  const prefixes: string[] = [];
  /** Logs are removed unless asked to keep them (a failed start, or PESAN_KEEP_TEST_LOGS=1). */
  const stop = async (keepLogs = process.env.PESAN_KEEP_TEST_LOGS === "1") => {
    await Promise.all([...clusters.map((c) => c.peerSync.stop()), ...running.map((c) => c.stop()), ...proxies.map((p) => p.close())]);
    await Promise.all(dbs.map((d) => d.drop()));
    await Promise.all(prefixes.map((p) => deleteRedisKeys(p)));
    if (!keepLogs) rmSync(logDir, { recursive: true, force: true });
  };
  try {
    // Gateways and routers first, on ports of startCluster's choosing: peer-sync's ports are
    // taken afterwards, so the two can never be handed the same free port.
    const started = await Promise.all(
      o.names.map(async (name) => {
        const prefix = uniquePrefix(`peer${name}`);
        prefixes.push(prefix);
        if (!withRouters(name)) return { prefix, cluster: undefined };
        const i = o.names.indexOf(name);
        const cluster = await startCluster({
          databaseUrl: dbs[i]!.url,
          redisUrl: process.env.REDIS_URL!,
          gateways: 1,
          routers: 1,
          busPrefix: prefix,
          logDir: join(logDir, name),
          env: { SERVER_NAME: name, PASSWORD_HASH_COST: "10", ...o.routerEnv?.(name) },
        });
        running.push(cluster);
        return { prefix, cluster };
      }),
    );
    const tcpPorts = await freePorts(3 * n);
    const addressOf = (i: number) => started[i]!.cluster?.addresses[0] ?? `127.0.0.1:${4990 + i}`;
    // Where the others call cluster j: its own port, or its latency proxy's.
    const callPortOf = (j: number) => (o.slowSync?.[o.names[j]!] === undefined ? tcpPorts[j]! : tcpPorts[2 * n + j]!);
    for (const [j, name] of o.names.entries()) {
      const delayMs = o.slowSync?.[name];
      if (delayMs !== undefined) proxies.push(await startLatencyProxy({ port: callPortOf(j), target: { host: "127.0.0.1", port: tcpPorts[j]! }, delayMs }));
    }
    for (const [i, name] of o.names.entries()) {
      const syncPort = tcpPorts[i]!;
      const httpPort = tcpPorts[n + i]!;
      const syncUrl = `${scheme}://127.0.0.1:${callPortOf(i)}`;
      const peers = o.names
        .map((other, j) => ({ other, j }))
        .filter(({ other }) => other !== name && !o.unlinked?.includes(name) && !o.unlinked?.includes(other))
        .map(({ other, j }) => `${other}=${scheme}://127.0.0.1:${callPortOf(j)}=${addressOf(j)}=${keyOf(name, other)}`)
        .join(",");
      const env: Record<string, string> = {
        DATABASE_URL: dbs[i]!.url,
        SERVER_NAME: name,
        PUBLIC_ADDRESS: addressOf(i),
        SYNC_LISTEN: `127.0.0.1:${syncPort}`,
        SYNC_URL: syncUrl,
        PEERS: peers,
        LIVENESS_INTERVAL_MS: String(o.intervalMs ?? 200),
        LIVENESS_TIMEOUT_MS: "500",
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(httpPort),
        LOG_LEVEL: "info",
        ...(o.tls ? { SYNC_TLS_CERT: o.tls.cert, SYNC_TLS_KEY: o.tls.key, SYNC_TLS_CA: o.tls.ca } : {}),
        ...o.env,
      };
      const peerSync = new ServiceProcess("peer-sync", `peer-sync-${name}`, env, httpPort, undefined, join(logDir, `peer-sync-${name}.log`));
      clusters.push({ name, db: dbs[i]!, prefix: started[i]!.prefix, cluster: started[i]!.cluster, peerSync, address: addressOf(i), syncUrl, syncPort });
    }
    await Promise.all(
      clusters.map(async (c) => {
        if (o.start && !o.start.includes(c.name)) return;
        c.peerSync.start();
        await c.peerSync.waitReady(30_000);
        await expectIdentity(c);
      }),
    );
  } catch (e) {
    await stop(true);
    throw new Error(`linked clusters did not start (logs in ${logDir}): ${(e as Error).message}`);
  }
  return {
    clusters,
    logDir,
    keyOf,
    get: (name) => {
      const c = clusters.find((x) => x.name === name);
      if (!c) throw new Error(`no cluster ${name}`);
      return c;
    },
    stop,
  };
}

/**
 * Another process that grabbed the same free port would pass waitReady; a wrong answer here
 * says so plainly instead of failing later in a puzzling way.
 */
export async function expectIdentity(c: LinkedCluster): Promise<void> {
  const r = await fetch(`http://127.0.0.1:${c.peerSync.httpPort}/healthz`);
  const body = (await r.json()) as { service?: string; cluster?: string };
  if (body.service !== "peer-sync" || body.cluster !== c.name) {
    throw new Error(`port ${c.peerSync.httpPort} answers as ${JSON.stringify(body.service)}/${JSON.stringify(body.cluster)}, not peer-sync/${c.name} (a port collision)`);
  }
}

/** Runs one query on a cluster's database (a fresh connection: tests issue few). */
export async function sqlOn<R extends Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as R[];
  } finally {
    await c.end();
  }
}

export interface ServerLine {
  name: string;
  address: string;
  state: string;
  online: number;
  quota: number;
}

/** A `SERVERS` answer (requestAll's lines: `SERVER ...` lines, then `OK SERVERS <n>`) as rows; throws on anything else. */
export function parseServers(lines: string[]): ServerLine[] {
  const rows = lines.slice(0, -1).map((l) => {
    const m = /^SERVER (\S+) (\S+) (UP|DOWN) (\d+)\/(\d+)$/.exec(l);
    if (!m) throw new Error(`not a SERVER line: ${l}`);
    return { name: m[1]!, address: m[2]!, state: m[3]!, online: Number(m[4]), quota: Number(m[5]) };
  });
  if (lines.at(-1) !== `OK SERVERS ${rows.length}`) throw new Error(`SERVERS ended with ${JSON.stringify(lines.at(-1))}, not OK SERVERS ${rows.length}`);
  return rows;
}

/** Polls until check() returns without throwing; rethrows its last error after timeoutMs. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

export interface LinkedFixture {
  /** The running clusters (set in beforeAll). */
  readonly lc: LinkedClusters;
  /** A cluster's gateway address. */
  addr(name: string): string;
  /** A query on a cluster's own database. */
  sql<R extends Record<string, unknown>>(name: string, text: string, params?: unknown[]): Promise<R[]>;
  /** Closes a client in afterAll, before the clusters stop; returns it. */
  track<T extends { close(): unknown }>(c: T): T;
}

/** Linked clusters started in beforeAll and stopped in afterAll, for one test file. */
export function useLinkedClusters(o: LinkedClustersOptions, setupTimeoutMs = 90_000): LinkedFixture {
  let lc: LinkedClusters | undefined;
  const open: Array<{ close(): unknown }> = [];
  beforeAll(async () => {
    lc = await startLinkedClusters(o);
  }, setupTimeoutMs);
  afterAll(async () => {
    await Promise.all(open.splice(0).map(async (c) => c.close()));
    await lc?.stop();
  });
  const running = (): LinkedClusters => {
    if (!lc) throw new Error("the linked clusters are not started yet (use them inside a test)");
    return lc;
  };
  return {
    get lc() {
      return running();
    },
    addr: (name) => running().get(name).address,
    sql: (name, text, params = []) => sqlOn(running().get(name).db.url, text, params),
    track: (c) => {
      open.push(c);
      return c;
    },
  };
}

/**
 * `SERVERS` through a cluster's gateway, as a netcat user would send it, in a session of its
 * own (without one an address gets at most 3x its bytes); the session ends before it returns.
 */
export async function serversAt(address: string): Promise<ServerLine[]> {
  const c = await RawClient.open(address);
  try {
    const name = `srv_${Math.random().toString(36).slice(2, 10)}`;
    await c.request(`REGISTER ${name} secret1`);
    await c.request(`LOGIN ${name} secret1`);
    const lines = await c.requestAll("SERVERS", 3000);
    await c.request("LOGOUT");
    return parseServers(lines);
  } finally {
    c.close();
  }
}
