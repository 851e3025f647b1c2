export type { Bus, BusEntry, PublishItem, ConsumerOptions, BatchHandler, Consumer, HeldEntries } from "./bus.ts";
export { RedisBus } from "./redis-bus.ts";
export { MemoryBus } from "./memory-bus.ts";
export * from "./wire.ts";
