import { z } from "zod";
import { busShards, commonSettings, int, port, redisUrl, loadConfig, type Env } from "@pesan/shared/config";

export const gatewaySettings = {
  ...commonSettings,
  REDIS_URL: redisUrl().optional(),
  BUS_SHARDS: busShards(),
  HTTP_PORT: port().default(9100),
  /** Stable across restarts: sessions remember which gateway holds their client's address. */
  GATEWAY_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 _ . -").optional(),
  UDP_HOST: z.string().default("0.0.0.0"),
  UDP_PORT: port().default(4999),
  /** Sustained datagrams per second allowed from one address, and the burst above it. */
  RATE_LIMIT_PER_SEC: int(1, 1_000_000).default(4000),
  RATE_LIMIT_BURST: int(1, 1_000_000).default(4000),
  /** Datagrams per second (and burst) from all the addresses of one IP that hold no session. */
  IP_RATE_LIMIT_PER_SEC: int(1, 1_000_000).default(500),
  // 0.2 s of the rate: a burst is what reaches the routers at once, and 1,000 sessionless
  // requests arriving together held a chatting client's SEND ~400 ms behind them (the per-IP
  // sweep test, test/alone/per-ip-sweep.test.ts); 100 keeps that under its p99 target.
  IP_RATE_LIMIT_BURST: int(1, 1_000_000).default(100),
  /** Bytes per second plain sessions and REDIRECTs of one IP may get beyond the 3x credit. */
  PLAIN_BYTES_PER_IP: int(0, 1_000_000_000).default(65_536),
  /** Most session-less client addresses remembered (their amplification credit). */
  MAX_ENDPOINTS: int(1000, 10_000_000).default(100_000),
  /** A request unanswered this long gets `ERR UNAVAILABLE`. */
  BACKEND_TIMEOUT_MS: int(100, 60_000).default(2000),
  UDP_BUFFER_BYTES: int(65_536, 64 * 1024 * 1024).default(4 * 1024 * 1024),
  /** Most datagrams packed into one stream entry. */
  MAX_PACK: int(1, 10_000).default(1024),
  /**
   * Entries the `in` stream may hold (routers down or behind) before this gateway answers new
   * requests ERR UNAVAILABLE instead of adding to it, so Redis never runs out of memory with
   * accepted work in it. Checked every 200 ms (XLEN). 0: no check.
   */
  IN_STREAM_MAX_LEN: int(0, 100_000_000).default(100_000),
  /** Payload bytes awaiting Redis's answer at most; past it requests get ERR UNAVAILABLE at once. */
  PUBLISH_MAX_BYTES: int(65_536, 4 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
};

export const gatewaySchema = z.object(gatewaySettings);
export type GatewayConfig = z.infer<typeof gatewaySchema>;

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  return loadConfig(gatewaySchema, env);
}
