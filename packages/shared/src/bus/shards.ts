/**
 * BUS_SHARDS must be the same on every gateway and router of one bus: a gateway with 4 shards
 * publishes to `in:3`, which routers with 2 never read, and its requests go unanswered without
 * an error anywhere. So the first process to start records its count in Redis
 * (`<BUS_PREFIX>bus-shards`, SET NX) and every later one compares its own with it and refuses
 * to start on a difference (RedisBus.checkShards).
 */
import { ConfigError } from "../errors.ts";

export const SHARDS_KEY = "bus-shards";

/** What a process with `mine` shards says when the bus already runs with `recorded` (undefined: they agree). */
export function shardsMismatch(mine: number, recorded: string, key: string): string | undefined {
  if (recorded === String(mine)) return undefined;
  return (
    `BUS_SHARDS=${mine}, but the gateways and routers of this bus use BUS_SHARDS=${recorded} (recorded in Redis as ${key}): ` +
    "set the same on all of them. To change it, stop every gateway and router, let the routers drain the in streams first, then DEL that key"
  );
}

/** The commands it takes (a Redis or a Cluster client). */
export interface ShardsStore {
  set(key: string, value: string, nx: "NX"): Promise<"OK" | null>;
  get(key: string): Promise<string | null>;
}

/** Records `shards` unless a count is recorded already; throws a ConfigError naming BUS_SHARDS and both values if it differs. */
export async function agreeOnShards(store: ShardsStore, key: string, shards: number): Promise<void> {
  // A few rounds: the key may be deleted (an operator changing the count) between SET and GET.
  for (let i = 0; i < 3; i++) {
    if ((await store.set(key, String(shards), "NX")) === "OK") return;
    const recorded = await store.get(key);
    if (recorded === null) continue;
    const mismatch = shardsMismatch(shards, recorded, key);
    if (mismatch) throw new ConfigError([mismatch]);
    return;
  }
}

/**
 * Each of a router's shards has its consumer, and each consumer runs its batch (one
 * transaction) concurrently with the others': past the pool's size they queue for connections.
 */
export function shardsPoolWarning(shards: number, poolMax: number): string | undefined {
  if (shards <= poolMax) return undefined;
  return `BUS_SHARDS=${shards} is more than DB_POOL_MAX=${poolMax}: each shard's consumer runs a batch at once, so ${shards - poolMax} of them wait for a connection; raise DB_POOL_MAX`;
}
