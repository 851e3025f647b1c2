import { z } from "zod";
import { commonSettings, hostPort, int, pgUrl, port, redisUrl, loadConfig, type Env } from "@pesan/shared/config";
import { PLAIN_SESSION_POLICIES } from "@pesan/shared/protocol";

/** One `name=host:port` entry per other server this cluster knows before peer-sync runs. */
const serverList = z
  .string()
  .default("")
  .transform((s, ctx) => {
    const out: Array<{ name: string; address: string; proximity: number }> = [];
    for (const [i, item] of s.split(",").map((x) => x.trim()).filter(Boolean).entries()) {
      const m = /^([A-Za-z0-9_-]{1,16})=((?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5})$/.exec(item);
      if (!m) {
        ctx.addIssue({ code: "custom", message: `entry ${JSON.stringify(item)} must be name=host:port` });
        return z.NEVER;
      }
      out.push({ name: m[1]!, address: m[2]!, proximity: (i + 1) * 10 });
    }
    return out;
  });

export const routerSettings = {
  ...commonSettings,
  DATABASE_URL: pgUrl().optional(),
  REDIS_URL: redisUrl().optional(),
  HTTP_PORT: port().default(9200),
  ROUTER_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
  /** This cluster's name in SERVERS and in message ids. */
  SERVER_NAME: z.string().regex(/^[A-Za-z0-9_-]{1,16}$/, "must be 1-16 of A-Z a-z 0-9 _ -").default("local"),
  /** The address clients use to reach this cluster (nginx or a gateway). */
  PUBLIC_ADDRESS: hostPort().default("127.0.0.1:4999"),
  /** Most users online at once on this server; 0 for no limit. */
  QUOTA: int(0, 10_000_000).default(10_000),
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
  /** log2 of scrypt's N: 14 is about 30-60 ms per hash on one core. */
  PASSWORD_HASH_COST: int(10, 20).default(14),
  DB_POOL_MAX: int(1, 100).default(10),
};

export const routerSchema = z.object(routerSettings);
export type RouterConfig = z.infer<typeof routerSchema>;

export function loadRouterConfig(env: Env = process.env): RouterConfig {
  return loadConfig(routerSchema, env);
}
