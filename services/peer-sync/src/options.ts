import { readFileSync } from "node:fs";
import type { PeerSyncConfig } from "./config.ts";
import type { PeerSyncOptions } from "./peer-sync.ts";

/** Settings to component options; reads the TLS files (their presence was checked with the config). */
export function peerSyncOptionsFrom(c: PeerSyncConfig): PeerSyncOptions {
  return {
    self: c.SERVER_NAME,
    publicAddress: c.PUBLIC_ADDRESS,
    syncUrl: c.syncUrl,
    peers: c.peers,
    listen: c.listen,
    ...(c.SYNC_TLS_CERT && c.SYNC_TLS_KEY ? { tls: { cert: readFileSync(c.SYNC_TLS_CERT), key: readFileSync(c.SYNC_TLS_KEY) } } : {}),
    ...(c.SYNC_TLS_CA ? { ca: readFileSync(c.SYNC_TLS_CA) } : {}),
    intervalMs: c.LIVENESS_INTERVAL_MS,
    failuresToDown: c.LIVENESS_FAILURES,
    timeoutMs: c.LIVENESS_TIMEOUT_MS,
    windowMs: c.CLOCK_SKEW_MS,
    outboxPollMs: c.OUTBOX_POLL_MS,
    outboxBatch: c.OUTBOX_BATCH,
    snapshotMs: c.SNAPSHOT_INTERVAL_MS,
    backlogMaxAgeMs: c.PEER_BACKLOG_MAX_AGE_MS,
    ...(c.join ? { join: c.join } : {}),
  };
}
