/**
 * The set-up and tear-down the end-to-end test files share: a fresh database and bus prefix, a
 * process cluster (or the nginx topology) started in beforeAll, and in afterAll every client
 * opened through the fixture closed, the processes stopped, the database dropped and the Redis
 * keys deleted.
 *
 *   const fx = useCluster("protocol", { gateways: 1, routers: 1, env: { QUOTA: "500" } });
 *   test("...", async () => {
 *     const c = await fx.client();
 *     const { c: a, token } = await fx.login("alice", "secret1", { register: true });
 *     await sql(fx.db.url, "...");
 *   });
 *
 * The fields are filled in by beforeAll: read them inside hooks and tests, not at module level.
 */
import { nginxAvailable, startCluster, startTopology, type Cluster, type ClusterOptions, type Topology } from "@pesan/cluster";
import { createTestDatabase, deleteRedisKeys, uniquePrefix, type TestDatabase } from "./db.ts";
import { loginClient, healthStatus } from "./e2e.ts";
import { RawClient } from "./udp.ts";

/** Every process gets these unless `env` overrides them (a cheap hash keeps logins fast). */
export const DEFAULT_ENV: Readonly<Record<string, string>> = { PASSWORD_HASH_COST: "10" };

export type FixtureOptions = Omit<ClusterOptions, "databaseUrl" | "redisUrl" | "busPrefix"> & {
  /** beforeAll's timeout (jest's testTimeout when omitted). */
  setupTimeoutMs?: number;
};

export type TopologyFixtureOptions = FixtureOptions & { nginxPort?: number; dir?: string };

export interface LoginOptions {
  register?: boolean;
  capAck?: boolean;
  /** Where to log in; the fixture's `address` when omitted. */
  address?: string;
}

export interface ClusterFixture {
  readonly db: TestDatabase;
  readonly cluster: Cluster;
  /** The bus prefix (also the prefix of every Redis key the cluster writes). */
  readonly prefix: string;
  /** host:port of each gateway, in order. */
  readonly addresses: string[];
  /** Where clients connect by default: the first gateway (or nginx, for a topology). */
  readonly address: string;
  /** Opens a client (at `address` unless told otherwise), closed in afterAll. */
  client(address?: string): Promise<RawClient>;
  /** {@link loginClient} at `opts.address ?? address`; the client is closed in afterAll. */
  login(name: string, password: string, opts?: LoginOptions): Promise<{ c: RawClient; token: string }>;
  /** Closes a client opened some other way in afterAll; returns it. */
  track<T extends { close(): void }>(c: T): T;
  /** The first gateway is still running, healthy, and answers a request. */
  gatewayStillServes(): Promise<void>;
}

export interface TopologyFixture extends ClusterFixture {
  readonly topology: Topology;
}

interface Started {
  cluster: Cluster;
  address: string;
  topology?: Topology;
  stop(): Promise<void>;
}

function setUp(label: string, o: FixtureOptions, start: (base: ClusterOptions) => Promise<Started>): TopologyFixture {
  const { setupTimeoutMs, env, ...rest } = o;
  const prefix = uniquePrefix(label);
  const open: Array<{ close(): void }> = [];
  let db: TestDatabase | undefined;
  let started: Started | undefined;

  const ready = (): { db: TestDatabase; started: Started } => {
    if (!db || !started) throw new Error(`the "${label}" fixture is not set up: use its fields inside hooks and tests`);
    return { db, started };
  };
  const track = <T extends { close(): void }>(c: T): T => {
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    db = await createTestDatabase(label);
    started = await start({ ...rest, databaseUrl: db.url, redisUrl: process.env.REDIS_URL!, busPrefix: prefix, env: { ...DEFAULT_ENV, ...env } });
  }, setupTimeoutMs);

  afterAll(async () => {
    for (const c of open.splice(0)) c.close();
    try {
      await started?.stop();
    } finally {
      try {
        await db?.drop();
      } finally {
        await deleteRedisKeys(prefix);
      }
    }
  });

  return {
    prefix,
    get db() {
      return ready().db;
    },
    get cluster() {
      return ready().started.cluster;
    },
    get addresses() {
      return ready().started.cluster.addresses;
    },
    get address() {
      return ready().started.address;
    },
    get topology() {
      const { topology } = ready().started;
      if (!topology) throw new Error(`the "${label}" fixture runs no nginx: use useTopology`);
      return topology;
    },
    client: async (address?: string) => track(await RawClient.open(address ?? ready().started.address)),
    login: async (name, password, opts = {}) => {
      const r = await loginClient(opts.address ?? ready().started.address, name, password, opts);
      track(r.c);
      return r;
    },
    track,
    gatewayStillServes: async () => {
      const gw = ready().started.cluster.gateways[0]!;
      expect(gw.running).toBe(true);
      expect(await healthStatus(gw)).toBe(200);
      const c = track(await RawClient.open(gw.udpPort ? `127.0.0.1:${gw.udpPort}` : ready().started.address));
      // The heartbeat goes through the whole path (gateway, bus, router, database).
      c.send("@still /@live?");
      expect(await c.waitFor(/^@still /)).toBe("@still yes");
    },
  };
}

/** A process cluster (startCluster) for the file: N gateways, M routers; clients go to the first gateway. */
export function useCluster(label: string, o: FixtureOptions = {}): ClusterFixture {
  return setUp(label, o, async (base) => {
    const cluster = await startCluster(base);
    return { cluster, address: cluster.addresses[0]!, stop: () => cluster.stop() };
  });
}

/** The production topology (startTopology): nginx in front of the cluster; clients go to nginx. */
export function useTopology(label: string, o: TopologyFixtureOptions = {}): TopologyFixture {
  const { nginxPort, dir, ...rest } = o;
  return setUp(label, rest, async (base) => {
    if (!nginxAvailable()) throw new Error("these tests need nginx with the stream module: apt-get install nginx libnginx-mod-stream");
    const topology = await startTopology({ ...base, nginxPort, dir });
    return { cluster: topology.cluster, address: topology.address, topology, stop: () => topology.stop() };
  });
}
