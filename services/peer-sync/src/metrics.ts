import { Counter, Gauge, Histogram, type Registry } from "@pesan/shared/observability";
import { REFUSAL_REASONS } from "./auth.ts";
import type { IgnoreReason } from "./ownership.ts";

/** The kinds each ignore reason applies to: the label pairs a dashboard sees from the start (at 0). */
const IGNORABLE: ReadonlyArray<[string, IgnoreReason]> = [
  ["user.register", "not_home"],
  ["user.register", "bad_pass_hash"],
  ["user.unregister", "not_owner"],
  ["session.up", "not_own_session"],
  ["session.down", "not_own_session"],
  ["session.snapshot", "not_own_session"],
  ["message.new", "foreign_id"],
  ["message.new", "taken_id"],
  ["broadcast", "foreign_id"],
  ["message.state", "not_held"],
  ["member.join", "not_member"],
  ["member.join", "revoked"],
  ["member.revoke", "not_member"],
];

export type PeerSyncMetrics = ReturnType<typeof createPeerSyncMetrics>;

/**
 * Labels are bounded: `peer` only ever takes names from PEERS (never a name a request claims),
 * `reason` the fixed refusal list, `kind` the protocol's frame kinds.
 */
export function createPeerSyncMetrics(registry: Registry, peers: string[]) {
  const m = {
    linkUp: new Gauge({ name: "pesan_peer_link_up", help: "1 when the peer answers our checks, 0 when DOWN or not yet known", labelNames: ["peer"], registers: [registry] }),
    helloSeconds: new Histogram({
      name: "pesan_peer_hello_seconds",
      help: "Round-trip time of a successful liveness check (announce or hello)",
      labelNames: ["peer"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    checks: new Counter({ name: "pesan_peer_checks_total", help: "Liveness checks sent, by outcome", labelNames: ["peer", "outcome"], registers: [registry] }),
    refused: new Counter({ name: "pesan_peer_refused_requests_total", help: "Inbound requests refused, by reason", labelNames: ["reason"], registers: [registry] }),
    applied: new Counter({ name: "pesan_peer_frames_applied_total", help: "Inbound frames applied, by kind", labelNames: ["kind"], registers: [registry] }),
    framesRefused: new Counter({
      name: "pesan_peer_frames_refused_total",
      help: "Inbound frames (of accepted batches) ignored because the sender does not own what they would change, by kind and reason",
      labelNames: ["kind", "reason"],
      registers: [registry],
    }),
    outboxDepth: new Gauge({ name: "pesan_peer_outbox_depth", help: "Outbox rows the peer has not acknowledged yet", labelNames: ["peer"], registers: [registry] }),
    replicationLag: new Gauge({
      name: "pesan_peer_replication_lag_seconds",
      help: "Age of the oldest outbox row the peer has not acknowledged (0 when none)",
      labelNames: ["peer"],
      registers: [registry],
    }),
    framesSent: new Counter({ name: "pesan_peer_frames_sent_total", help: "Outbox frames acknowledged by a peer", labelNames: ["peer"], registers: [registry] }),
    backlogDropped: new Counter({
      name: "pesan_peer_outbox_dropped_total",
      help: "Outbox rows of a peer DOWN longer than PEER_BACKLOG_MAX_AGE_MS dropped (it is bootstrapped again when back)",
      labelNames: ["peer"],
      registers: [registry],
    }),
    batchFrames: new Histogram({
      name: "pesan_peer_batch_frames",
      help: "Frames per request sent to a peer (small batches under load mean per-request overhead dominates)",
      labelNames: ["peer"],
      buckets: [1, 5, 20, 50, 100, 250, 500, 1000, 5000],
      registers: [registry],
    }),
  };
  // Present from the start, so a dashboard sees 0 rather than nothing.
  for (const p of peers) {
    m.linkUp.set({ peer: p }, 0);
    m.outboxDepth.set({ peer: p }, 0);
    m.replicationLag.set({ peer: p }, 0);
    m.backlogDropped.inc({ peer: p }, 0);
  }
  for (const r of REFUSAL_REASONS) m.refused.inc({ reason: r }, 0);
  for (const [kind, reason] of IGNORABLE) m.framesRefused.inc({ kind, reason }, 0);
  return m;
}
