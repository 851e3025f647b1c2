export { loadConfig, int, port, bool, logLevel, id, pgUrl, redisUrl, busShards, hostPort, commonSettings, type Env } from "./config.ts";
export { parseRedisUrl, RedisUrlError, type RedisTarget, type SentinelAddress } from "./redis-url.ts";
