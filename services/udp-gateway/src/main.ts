#!/usr/bin/env node
/** The UDP gateway process: wiring only. */
import { RedisBus } from "@pesan/shared/bus";
import { createLogger, createRegistry, dependencyChecks, HealthServer } from "@pesan/shared/observability";
import { closeOnly, runService } from "@pesan/shared/runtime";
import { loadGatewayConfig } from "./config.ts";
import { Gateway } from "./gateway.ts";
import { gatewayOptionsFrom } from "./options.ts";

const HELP = `pesan udp-gateway: the UDP endpoint clients talk to; forwards to routers over Redis streams.

usage: node services/udp-gateway/src/main.ts [--help] [--version]

Configured by environment variables (or a JSON file named by PESAN_CONFIG_FILE):
  REDIS_URL (required)  redis://host:port, redis+sentinel://h1:26379,h2:26379,.../<master>
                        or redis+cluster://h1:p1,h2:p2,...   BUS_SHARDS=1 (in stream shards)
  GATEWAY_ID (default gw-<hostname>-<port>)
  UDP_HOST=0.0.0.0  UDP_PORT=4999  RATE_LIMIT_PER_SEC=4000  RATE_LIMIT_BURST=4000
  IP_RATE_LIMIT_PER_SEC=500  IP_RATE_LIMIT_BURST=100 (addresses of one IP without a session)
  PLAIN_BYTES_PER_IP=65536 (bytes/s to one IP's plain sessions beyond the 3x bound)
  MAX_ENDPOINTS=100000  BACKEND_TIMEOUT_MS=2000  UDP_BUFFER_BYTES=4194304  MAX_PACK=1024  BUS_PREFIX=pesan:
  IN_STREAM_MAX_LEN=100000 (in stream entries before ERR UNAVAILABLE)  PUBLISH_MAX_BYTES=67108864
  HTTP_HOST=127.0.0.1  HTTP_PORT=9100 (/healthz, /metrics)  LOG_LEVEL=info
See README.md for the full table.
`;

void runService({
  help: HELP,
  config: () => {
    const config = loadGatewayConfig();
    if (!config.REDIS_URL) throw new Error("invalid configuration:\n  - REDIS_URL is required (use `pnpm start` for the embedded mode)");
    return { ...config, REDIS_URL: config.REDIS_URL };
  },
  build: async (config) => {
    const opts = gatewayOptionsFrom(config);
    const logger = createLogger("udp-gateway", config.LOG_LEVEL, { gatewayId: opts.gatewayId });
    const registry = createRegistry("udp-gateway");
    const bus = new RedisBus(config.REDIS_URL, config.BUS_PREFIX, { maxBytesInFlight: config.PUBLISH_MAX_BYTES });
    await bus.checkShards(config.BUS_SHARDS, logger);
    const gateway = new Gateway({ bus, logger, registry }, opts);
    const health = new HealthServer({
      host: config.HTTP_HOST,
      port: config.HTTP_PORT,
      registry,
      logger,
      checks: dependencyChecks({ bus }),
      info: () => ({ service: "udp-gateway", gatewayId: opts.gatewayId, udp: gateway.address, pending: gateway.pendingCount() }),
    });
    return { components: [closeOnly("redis", () => bus.close()), gateway, health], logger, deadlineMs: config.SHUTDOWN_TIMEOUT_MS };
  },
});
