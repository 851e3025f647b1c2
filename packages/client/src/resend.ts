/**
 * When an unanswered SEND may go again (PesanClient.request; docs/protocol.md "Tags"). A resend
 * carries the first try's tag, so the server takes it for the same send only inside its dedup
 * window (SEND_DEDUP_WINDOW_MS, counted from when the first try was stored): one that came later
 * would be a new generation of the tag, a second message. So resends stop RESEND_WITHIN_MS after
 * the first try, a margin below the window for the datagram's way, a busy server's batch and
 * the clusters' clocks, whatever the heartbeat settings would allow.
 */
import { SEND_DEDUP_WINDOW_MS } from "@pesan/shared/protocol";

/** No resend of a SEND starts later than this after its first try. */
export const RESEND_WITHIN_MS = SEND_DEDUP_WINDOW_MS - 5_000;

export interface ResendTiming {
  heartbeatMs: number;
  missedHeartbeats: number;
  /** The timeout of each try. */
  timeoutMs: number;
}

/**
 * Whether a SEND first tried at `firstAt` (ms) and unanswered may be tried again at `now`:
 * while a failover may still be under way (the heartbeats notice a dead server, RESUME moves
 * the session) with time for the try itself, and never past RESEND_WITHIN_MS.
 */
export function mayResendSend(now: number, firstAt: number, t: ResendTiming): boolean {
  const failoverEnds = firstAt + t.heartbeatMs * (t.missedHeartbeats + 1) + 2 * t.timeoutMs;
  return now + t.timeoutMs <= failoverEnds && now - firstAt <= RESEND_WITHIN_MS;
}
