import { isIP } from "node:net";
import { z } from "zod";
import { DEFAULT_QUERY_TIMEOUT_MS } from "@pesan/shared/db";
import { busShards, commonSettings, hostPort, int, pgUrl, port, redisUrl, loadConfig, type Env } from "@pesan/shared/config";
import { CLUSTER_NAME_RE, CLUSTER_NAME_RULE, HOST_PORT_RE, isClusterName } from "@pesan/shared/names";
import { PASS_HASH_COST_MAX, PASS_HASH_COST_MIN, PLAIN_SESSION_POLICIES } from "@pesan/shared/protocol";

/** One `name=host:port` entry per other server this cluster knows before peer-sync runs. */
const serverList = z
  .string()
  .default("")
  .transform((s, ctx) => {
    const out: Array<{ name: string; address: string; proximity: number }> = [];
    for (const [i, item] of s.split(",").map((x) => x.trim()).filter(Boolean).entries()) {
      // Neither a name nor a host:port holds `=`, so splitting at the first one is exact.
      const eq = item.indexOf("=");
      const name = item.slice(0, eq);
      const address = item.slice(eq + 1);
      if (eq < 0 || !isClusterName(name) || !HOST_PORT_RE.test(address)) {
        ctx.addIssue({ code: "custom", message: `entry ${JSON.stringify(item)} must be name=host:port` });
        return z.NEVER;
      }
      out.push({ name, address, proximity: (i + 1) * 10 });
    }
    return out;
  });

/** A comma-separated list of IP addresses (PROXY_IPS). */
const ipList = z
  .string()
  .default("")
  .transform((s, ctx) => {
    const out = s.split(",").map((x) => x.trim()).filter(Boolean);
    for (const ip of out) {
      if (isIP(ip) === 0) {
        ctx.addIssue({ code: "custom", message: `${JSON.stringify(ip)} is not an IP address` });
        return z.NEVER;
      }
    }
    return out;
  });

export const routerSettings = {
  ...commonSettings,
  DATABASE_URL: pgUrl().optional(),
  REDIS_URL: redisUrl().optional(),
  BUS_SHARDS: busShards(),
  HTTP_PORT: port().default(9200),
  ROUTER_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
  /** This cluster's name in SERVERS and in message ids. */
  SERVER_NAME: z.string().regex(CLUSTER_NAME_RE, `must be ${CLUSTER_NAME_RULE}`).default("local"),
  /** The address clients use to reach this cluster (nginx or a gateway). */
  PUBLIC_ADDRESS: hostPort().default("127.0.0.1:4999"),
  /** Most users online at once on this server; 0 for no limit. */
  QUOTA: int(0, 10_000_000).default(10_000),
  /** The other servers (`name=host:port,...`, nearest first) for SERVERS when no peer-sync runs. */
  SERVERS: serverList,
  /**
   * The old name of SERVERS, read for one release (routerOptionsFrom warns): peer-sync's PEERS
   * is another list in another grammar, and one name for both misled operators.
   */
  PEERS: serverList,
  SESSION_LEASE_MS: int(1000, 86_400_000).default(180_000),
  /** Where sessions may act without proofs (netcat, v1 clients): all, loopback or none. */
  PLAIN_SESSIONS: z.enum(PLAIN_SESSION_POLICIES).default("all"),
  /** Most sessions at the addresses of one IP (so one host cannot fill QUOTA); 0 for no limit. */
  SESSIONS_PER_IP: int(0, 10_000_000).default(1000),
  BATCH_SIZE: int(1, 10_000).default(128),
  BLOCK_MS: int(10, 60_000).default(1000),
  CLAIM_IDLE_MS: int(100, 3_600_000).default(10_000),
  RESEND_BASE_MS: int(10, 60_000).default(200),
  /** Pushes in all; with the delay doubling up to RESEND_MAX_DELAY_MS, 8 cover about 18 s. */
  RESEND_MAX_ATTEMPTS: int(1, 50).default(8),
  RESEND_MAX_DELAY_MS: int(10, 600_000).default(5000),
  INBOX_LIMIT: int(1, 10_000).default(100),
  /**
   * log2 of scrypt's N (r = 8, p = 1): OWASP's minimum, 2^17, is 128 MiB and about 350 ms
   * per hash on one core of the CI machine (README, "Password hashing"). Old hashes keep
   * their own cost. The same range bounds the hashes accepted from peers and verified at LOGIN.
   */
  PASSWORD_HASH_COST: int(PASS_HASH_COST_MIN, PASS_HASH_COST_MAX).default(17),
  /** Hashes at once per router; 0: one per CPU core but one, 1 to 3 (libuv's pool has 4 threads). */
  PASSWORD_HASH_CONCURRENCY: int(0, 64).default(0),
  /** Password jobs waiting per router at most; a full queue drops from the IP holding most of it. */
  PASSWORD_QUEUE_MAX: int(1, 100_000).default(256),
  /** A password job not started within this gets ERR UNAVAILABLE (before the gateway's 2 s). */
  PASSWORD_QUEUE_WAIT_MS: int(0, 60_000).default(1000),
  /** Proxies in front of the gateways that hide client IPs (nginx): their clients count per port. */
  PROXY_IPS: ipList,
  /**
   * The password with which REGISTER may create a probe account (a name starting with
   * `probe-`, @pesan/shared/names; the monitor's PROBE_PASSWORD). Unset: nobody can.
   */
  PROBE_PASSWORD: z
    .string()
    .refine((s) => Buffer.byteLength(s) >= 6 && Buffer.byteLength(s) <= 128, "must be 6 to 128 bytes (a REGISTER password)")
    .optional(),
  DB_POOL_MAX: int(1, 100).default(10),
  /** One statement's client-side limit (ms): one in flight to a machine that vanished fails (transient) instead of hanging. 0: none. */
  DB_QUERY_TIMEOUT_MS: int(0, 3_600_000).default(DEFAULT_QUERY_TIMEOUT_MS),
  // --- bounded storage (retention.ts; README "Reliability") ---
  /** Undelivered messages one recipient may have (their box); a SEND past it gets ERR BOX_FULL. 0: no limit. */
  BOX_LIMIT: int(0, 10_000_000).default(10_000),
  /** Delivered (or read) messages older than this are deleted. 0: kept until MESSAGES_KEPT_PER_USER. */
  MESSAGE_RETENTION_MS: int(0, 100 * 365 * 86_400_000).default(30 * 86_400_000),
  /** Delivered (or read) messages kept per recipient, newest first; older ones go. 0: no cap. */
  MESSAGES_KEPT_PER_USER: int(0, 10_000_000).default(1000),
  /** connection_log rows older than this are deleted. 0: no age limit. */
  CONNECTION_LOG_RETENTION_MS: int(0, 100 * 365 * 86_400_000).default(30 * 86_400_000),
  /** connection_log rows kept at most (the newest). 0: no cap. */
  CONNECTION_LOG_MAX_ROWS: int(0, 1_000_000_000).default(1_000_000),
  /** How often the retention sweep runs. */
  RETENTION_INTERVAL_MS: int(100, 86_400_000).default(60_000),
  /** Rows one retention DELETE takes at most: one short transaction each. */
  RETENTION_BATCH: int(1, 100_000).default(1000),
};

export const routerSchema = z.object(routerSettings);
export type RouterConfig = z.infer<typeof routerSchema>;

export function loadRouterConfig(env: Env = process.env): RouterConfig {
  return loadConfig(routerSchema, env);
}
