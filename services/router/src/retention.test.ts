/** The retention sweep's pure parts: which instants and ids bound the deletes. */
import { connectionLogCutoffId, retentionCutoffs, UNLINKED_OUTBOX_RETENTION_MS } from "./retention.ts";
import { DEDUP_WINDOW_MS } from "./batch/index.ts";

const now = new Date("2026-11-22T12:00:00.000Z");

test("cutoffs: age limits before now; 0 turns a limit off; dedup never before the 60 s retry window", () => {
  const c = retentionCutoffs(now, { messageRetentionMs: 86_400_000, connectionLogRetentionMs: 3_600_000 });
  expect(c.messages?.toISOString()).toBe("2026-11-21T12:00:00.000Z");
  expect(c.connectionLog?.toISOString()).toBe("2026-11-22T11:00:00.000Z");
  expect(now.getTime() - c.dedup.getTime()).toBe(DEDUP_WINDOW_MS);
  expect(DEDUP_WINDOW_MS).toBe(60_000);
  expect(now.getTime() - c.unlinkedOutbox.getTime()).toBe(UNLINKED_OUTBOX_RETENTION_MS);
  const off = retentionCutoffs(now, { messageRetentionMs: 0, connectionLogRetentionMs: 0 });
  expect([off.messages, off.connectionLog]).toEqual([undefined, undefined]);
});

test("connection_log cap: delete ids up to max - cap; nothing when under the cap or off", () => {
  expect(connectionLogCutoffId(1000, 300)).toBe(700);
  expect(connectionLogCutoffId(300, 300)).toBeUndefined();
  expect(connectionLogCutoffId(10, 300)).toBeUndefined();
  expect(connectionLogCutoffId(1000, 0)).toBeUndefined();
});
