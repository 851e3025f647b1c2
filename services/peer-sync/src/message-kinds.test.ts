import { BROADCAST_MAX_AGE_MS, broadcastFrame, foldStates, isFreshBroadcast, mergeState, messageNew, messageState } from "./message-kinds.ts";

const at = "2024-05-01T12:00:00.123Z";

test("message state only moves forward: delivered and read never go back; read implies delivered", () => {
  const none = { delivered: false, read: false };
  const delivered = { delivered: true, read: false };
  const read = { delivered: true, read: true };
  expect(mergeState(none, delivered)).toEqual(delivered);
  expect(mergeState(delivered, none)).toEqual(delivered);
  expect(mergeState(read, delivered)).toEqual(read);
  expect(mergeState(delivered, read)).toEqual(read);
  expect(mergeState(none, { delivered: false, read: true })).toEqual(read);
  expect(mergeState(none, none)).toEqual(none);
  // Commutative: every cluster ends in the same state whatever order the frames come in.
  for (const x of [none, delivered, read]) for (const y of [none, delivered, read]) expect(mergeState(x, y)).toEqual(mergeState(y, x));
});

test("a broadcast is pushed only while fresh", () => {
  const now = new Date("2024-05-01T12:00:00.000Z");
  expect(isFreshBroadcast(new Date(now.getTime() - 500), now)).toBe(true);
  expect(isFreshBroadcast(new Date(now.getTime() - BROADCAST_MAX_AGE_MS), now)).toBe(true);
  expect(isFreshBroadcast(new Date(now.getTime() - BROADCAST_MAX_AGE_MS - 1), now)).toBe(false);
  // A sender's clock slightly ahead is fine.
  expect(isFreshBroadcast(new Date(now.getTime() + 1000), now)).toBe(true);
});

test("message frame schemas accept what the routers write and refuse bad shapes", () => {
  const m = { id: "a:lx3k-000-001", sentAt: at, sender: "alice", recipient: "carol", body: "hi\nthere" };
  expect(messageNew.safeParse(m).success).toBe(true);
  expect(messageNew.safeParse({ ...m, id: "a b" }).success).toBe(false);
  expect(messageNew.safeParse({ ...m, recipient: "*all" }).success).toBe(false);
  expect(messageNew.safeParse({ ...m, body: "x".repeat(9000) }).success).toBe(false);
  expect(messageNew.safeParse({ ...m, sentAt: "now" }).success).toBe(false);
  expect(messageState.safeParse({ ...m, delivered: true, read: false }).success).toBe(true);
  expect(messageState.safeParse({ id: m.id, recipient: "carol", deleted: true }).success).toBe(true);
  expect(messageState.safeParse({ id: m.id, recipient: "carol", delivered: true, read: false }).success).toBe(false);
  expect(messageState.safeParse({ id: m.id, recipient: "carol", deleted: false }).success).toBe(false);
  expect(broadcastFrame.safeParse({ id: m.id, sentAt: at, sender: "alice", body: "to all" }).success).toBe(true);
  expect(broadcastFrame.safeParse({ id: m.id, sentAt: at, body: "to all" }).success).toBe(false);
});

test("a run of states folds to one state per message, and a delete wins in either order", () => {
  const m = (id: string) => ({ id, sentAt: at, sender: "alice", recipient: "carol", body: "b" });
  const { states, deletes } = foldStates([
    { ...m("x"), delivered: true, read: false },
    { ...m("y"), delivered: false, read: true },
    { ...m("x"), delivered: false, read: false },
    { id: "z", recipient: "carol", deleted: true },
    { ...m("z"), delivered: true, read: true },
    { ...m("w"), delivered: true, read: false },
    { id: "w", recipient: "carol", deleted: true },
  ]);
  expect(states).toEqual([
    { ...m("x"), delivered: true, read: false },
    { ...m("y"), delivered: true, read: true },
  ]);
  expect(deletes).toEqual([
    { id: "z", recipient: "carol" },
    { id: "w", recipient: "carol" },
  ]);
});
