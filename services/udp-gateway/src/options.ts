import { hostname } from "node:os";
import type { GatewayConfig } from "./config.ts";
import type { GatewayOptions } from "./gateway.ts";

export function gatewayOptionsFrom(c: GatewayConfig): GatewayOptions {
  return {
    // Host and port identify a gateway stably across restarts (a container keeps its hostname).
    gatewayId: c.GATEWAY_ID ?? `gw-${hostname()}-${c.UDP_PORT}`,
    host: c.UDP_HOST,
    port: c.UDP_PORT,
    ratePerSec: c.RATE_LIMIT_PER_SEC,
    rateBurst: c.RATE_LIMIT_BURST,
    backendTimeoutMs: c.BACKEND_TIMEOUT_MS,
    bufferBytes: c.UDP_BUFFER_BYTES,
    maxPack: c.MAX_PACK,
    ipRatePerSec: c.IP_RATE_LIMIT_PER_SEC,
    ipRateBurst: c.IP_RATE_LIMIT_BURST,
    plainBytesPerIp: c.PLAIN_BYTES_PER_IP,
    maxEndpoints: c.MAX_ENDPOINTS,
    inStreamMaxLen: c.IN_STREAM_MAX_LEN,
    busShards: c.BUS_SHARDS,
  };
}
