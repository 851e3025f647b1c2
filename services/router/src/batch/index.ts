/** The router's batch: one transaction per stream batch (batch.ts), and what it is made of. */
export { Batch, processBatch } from "./batch.ts";
export { DEDUP_WINDOW_MS, emptyPrepared, parsedOf, type CoreDeps, type CoreSettings, type Frame, type Incoming, type Outgoing, type Prepared, type ReqCtx } from "./types.ts";
