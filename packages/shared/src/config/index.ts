export { loadConfig, int, port, bool, logLevel, id, pgUrl, redisUrl, hostPort, commonSettings, type Env } from "./config.ts";
