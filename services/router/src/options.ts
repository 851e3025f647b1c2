import { availableParallelism, hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { RouterConfig } from "./config.ts";
import type { RouterOptions } from "./router.ts";

/** A consumer name unique to this process: a restarted router must not inherit a dead one's name. */
export function defaultRouterId(): string {
  return `router-${hostname()}-${process.pid}-${randomBytes(2).toString("hex")}`;
}

/** The router's server list, and a warning while the deprecated PEERS name is still set. */
function serverListOf(c: RouterConfig): { servers: RouterConfig["SERVERS"]; warnings: string[] } {
  if (c.PEERS.length === 0) return { servers: c.SERVERS, warnings: [] };
  if (c.SERVERS.length > 0) {
    return { servers: c.SERVERS, warnings: ["the router's PEERS is ignored because SERVERS is set: remove PEERS (it is deprecated, renamed SERVERS)"] };
  }
  return {
    servers: c.PEERS,
    warnings: ["the router's PEERS is deprecated and will not be read after this release: rename it to SERVERS (the same name=host:port,... list; peer-sync's PEERS is a different setting)"],
  };
}

export function routerOptionsFrom(c: RouterConfig): RouterOptions {
  const { servers, warnings } = serverListOf(c);
  return {
    routerId: c.ROUTER_ID ?? defaultRouterId(),
    cluster: c.SERVER_NAME,
    publicAddress: c.PUBLIC_ADDRESS,
    quota: c.QUOTA,
    leaseMs: c.SESSION_LEASE_MS,
    resendBaseMs: c.RESEND_BASE_MS,
    resendMaxAttempts: c.RESEND_MAX_ATTEMPTS,
    resendMaxDelayMs: c.RESEND_MAX_DELAY_MS,
    inboxLimit: c.INBOX_LIMIT,
    plainSessions: c.PLAIN_SESSIONS,
    sessionsPerIp: c.SESSIONS_PER_IP,
    batchSize: c.BATCH_SIZE,
    blockMs: c.BLOCK_MS,
    busShards: c.BUS_SHARDS,
    claimIdleMs: c.CLAIM_IDLE_MS,
    passwordHashCost: c.PASSWORD_HASH_COST,
    passwordConcurrency: c.PASSWORD_HASH_CONCURRENCY || defaultHashConcurrency(),
    passwordQueueMax: c.PASSWORD_QUEUE_MAX,
    passwordQueueWaitMs: c.PASSWORD_QUEUE_WAIT_MS,
    proxyIps: c.PROXY_IPS,
    probePassword: c.PROBE_PASSWORD,
    peers: servers,
    configWarnings: warnings,
    boxLimit: c.BOX_LIMIT,
    retention: {
      messageRetentionMs: c.MESSAGE_RETENTION_MS,
      messagesKeptPerUser: c.MESSAGES_KEPT_PER_USER,
      connectionLogRetentionMs: c.CONNECTION_LOG_RETENTION_MS,
      connectionLogMaxRows: c.CONNECTION_LOG_MAX_ROWS,
      intervalMs: c.RETENTION_INTERVAL_MS,
      batch: c.RETENTION_BATCH,
    },
  };
}

/**
 * One hash per core but one, which is left to the event loops (this router's and the other
 * processes' on the machine: a hash never slows a batch for want of CPU), and one of libuv's
 * threads (UV_THREADPOOL_SIZE, 4 by default) left to the rest of the process (DNS, files): a
 * hash holds its thread for its whole run. At least 1.
 */
export function defaultHashConcurrency(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.min(availableParallelism() - 1, pool - 1));
}
