import { SEND_DEDUP_WINDOW_MS } from "@pesan/shared/protocol";
import { mayResendSend, RESEND_WITHIN_MS } from "./resend.ts";

test("resends follow the failover time: heartbeats to notice a dead server, plus the try", () => {
  const t = { heartbeatMs: 100, missedHeartbeats: 3, timeoutMs: 300 };
  // Failover ends 100 * 4 + 2 * 300 = 1000 ms after the first try; a try needs 300 of them.
  expect(mayResendSend(1_000 + 300, 1_000, t)).toBe(true);
  expect(mayResendSend(1_000 + 700, 1_000, t)).toBe(true);
  expect(mayResendSend(1_000 + 701, 1_000, t)).toBe(false);
});

test("however long the heartbeats, no resend starts past the server's dedup window (it would be a second message)", () => {
  expect(RESEND_WITHIN_MS).toBeLessThan(SEND_DEDUP_WINDOW_MS);
  // heartbeatMs 15000: failover alone would allow resends up to 15000 * 4 + 2 * 3000 - 3000 = 63 s.
  const t = { heartbeatMs: 15_000, missedHeartbeats: 3, timeoutMs: 3_000 };
  expect(mayResendSend(54_000, 0, t)).toBe(true);
  expect(mayResendSend(RESEND_WITHIN_MS, 0, t)).toBe(true);
  expect(mayResendSend(RESEND_WITHIN_MS + 1, 0, t)).toBe(false);
  expect(mayResendSend(63_000, 0, t)).toBe(false);
  // A try's timeout longer than the window: never resent.
  expect(mayResendSend(61_000, 0, { heartbeatMs: 5_000, missedHeartbeats: 3, timeoutMs: 61_000 })).toBe(false);
});
