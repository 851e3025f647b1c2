import { createLogger } from "@pesan/shared/observability";
import { classifySendError, Outbox } from "./outbox.ts";

const logger = createLogger("outbox-test", "silent");
const tick = () => new Promise((r) => setImmediate(r));

class ApiError extends Error {
  errorCode: number;
  parameters?: { retry_after?: number };
  description: string;
  constructor(code: number, description: string, retryAfter?: number) {
    super(description);
    this.errorCode = code;
    this.description = description;
    if (retryAfter !== undefined) this.parameters = { retry_after: retryAfter };
  }
}

test("classification: 429 waits retry_after, 5xx and network retry, other 4xx drop", () => {
  expect(classifySendError(new ApiError(429, "Too Many Requests", 7))).toEqual({ kind: "wait", ms: 7000 });
  expect(classifySendError(new ApiError(502, "Bad Gateway"))).toEqual({ kind: "retry" });
  expect(classifySendError(new Error("fetch failed"))).toEqual({ kind: "retry" });
  expect(classifySendError(new ApiError(403, "Forbidden: bot was blocked by the user"))).toEqual({ kind: "drop", reason: "403 Forbidden: bot was blocked by the user" });
});

test("a 429 holds only that chat for retry_after, then resends: nothing lost, order kept", async () => {
  const delivered: Array<[number, string]> = [];
  const sleeps: number[] = [];
  let release: () => void = () => undefined;
  let limited = false;
  const outbox = new Outbox({
    logger,
    send: async (chat, text) => {
      if (chat === 1 && text === "a2" && !limited) {
        limited = true;
        throw new ApiError(429, "Too Many Requests", 3);
      }
      delivered.push([chat, text]);
    },
    sleep: (ms) => {
      sleeps.push(ms);
      return new Promise<void>((r) => (release = r));
    },
  });
  for (const t of ["a1", "a2", "a3"]) outbox.enqueue(1, t);
  outbox.enqueue(2, "b1");
  for (let i = 0; i < 5; i++) await tick();
  expect(sleeps).toEqual([3000]);
  expect(delivered).toEqual([
    [1, "a1"],
    [2, "b1"],
  ]);
  outbox.enqueue(1, "a4");
  release();
  for (let i = 0; i < 10; i++) await tick();
  expect(delivered.filter(([c]) => c === 1).map(([, t]) => t)).toEqual(["a1", "a2", "a3", "a4"]);
  expect(outbox.size()).toBe(0);
  await outbox.close();
});

test("a refused message is dropped, the rest go; close() after the drain", async () => {
  const delivered: string[] = [];
  const outbox = new Outbox({
    logger,
    send: async (_chat, text) => {
      if (text === "bad") throw new ApiError(400, "Bad Request: chat not found");
      delivered.push(text);
    },
  });
  for (const t of ["x", "bad", "y"]) outbox.enqueue(5, t);
  await outbox.close();
  expect(delivered).toEqual(["x", "y"]);
  expect(outbox.enqueue(5, "late")).toBe(false);
});

test("close() gives up on a chat that keeps failing and returns", async () => {
  const outbox = new Outbox({
    logger,
    send: async () => {
      throw new Error("network down");
    },
  });
  outbox.enqueue(1, "never");
  const t = Date.now();
  await outbox.close();
  expect(Date.now() - t).toBeLessThan(3000);
  expect(outbox.size()).toBe(1);
});
