export type { Bus, BusEntry, PublishItem, ConsumerOptions, BatchHandler, Consumer, HeldEntries } from "./bus.ts";
export { BusUnavailableError, isTransientBusError } from "./bus.ts";
export { RedisBus, MAX_PUBLISHES_IN_FLIGHT, DEFAULT_MAX_PUBLISH_BYTES, redisRetryDelay } from "./redis-bus.ts";
export { createRedisClient, isCluster, type RedisClient } from "./redis-client.ts";
export { MemoryBus } from "./memory-bus.ts";
export { shardsMismatch, shardsPoolWarning, SHARDS_KEY } from "./shards.ts";
export * from "./wire.ts";
