import { Counter, Histogram, type Registry } from "@pesan/shared/observability";

export type RouterMetrics = ReturnType<typeof createRouterMetrics>;

/** Labels are bounded: command names come from the protocol's fixed list. */
export function createRouterMetrics(registry: Registry) {
  return {
    requests: new Counter({ name: "pesan_router_requests_total", help: "Requests processed, by command", labelNames: ["command"], registers: [registry] }),
    batchSize: new Histogram({
      name: "pesan_router_batch_requests",
      help: "Requests per processed batch",
      buckets: [1, 4, 16, 64, 128, 256, 512, 1024, 4096],
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: "pesan_router_batch_seconds",
      help: "Time to process one batch, transaction and publish included",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    pushes: new Counter({ name: "pesan_router_background_pushes_total", help: "Lines pushed by background work", labelNames: ["kind"], registers: [registry] }),
    expired: new Counter({ name: "pesan_router_sessions_expired_total", help: "Sessions ended by lease expiry", registers: [registry] }),
    // Bounded storage: table and reason are fixed lists (retention.ts).
    retentionDeleted: new Counter({
      name: "pesan_retention_deleted_total",
      help: "Rows deleted by the retention sweep, by table and reason (age, cap, window, unlinked)",
      labelNames: ["table", "reason"],
      registers: [registry],
    }),
    boxFull: new Counter({ name: "pesan_box_full_total", help: "SENDs refused with ERR BOX_FULL (the recipient's box of undelivered messages was full)", registers: [registry] }),
  };
}
