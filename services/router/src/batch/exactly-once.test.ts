import { idVerdict } from "./exactly-once.ts";

const now = new Date("2026-12-03T12:00:00.000Z");
const staleBefore = new Date(now.getTime() - 60_000);
const send = { sender: "ann", recipient: "bob", body: "hi bob" };
const at = (m: Partial<{ sender: string; recipient: string; body: string; sentAt: Date; delivered: boolean }> = {}) => ({
  id: "t.x",
  message: { ...send, sentAt: new Date(now.getTime() - 5_000), delivered: false, ...m },
});

test("a free id is taken by the send; the same send stored within the window is the send itself", () => {
  expect(idVerdict(undefined, send, staleBefore)).toBe("free");
  expect(idVerdict(at(), send, staleBefore)).toBe("same");
  expect(idVerdict(at({ delivered: true, sentAt: staleBefore }), send, staleBefore)).toBe("same");
});

test("another text, recipient or sender, an older send of a reused tag, or a deleted message: the next generation", () => {
  expect(idVerdict(at({ body: "hi bob!" }), send, staleBefore)).toBe("taken");
  expect(idVerdict(at({ recipient: "cat" }), send, staleBefore)).toBe("taken");
  expect(idVerdict(at({ sender: "eve" }), send, staleBefore)).toBe("taken");
  expect(idVerdict(at({ sentAt: new Date(staleBefore.getTime() - 1) }), send, staleBefore)).toBe("taken");
  // A tombstone (any peer may write one) never makes a live send vanish.
  expect(idVerdict({ id: "t.x" }, send, staleBefore)).toBe("taken");
});
