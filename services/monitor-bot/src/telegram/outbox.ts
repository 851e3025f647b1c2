/**
 * Every message to Telegram goes through here: one ordered queue per chat, sent one at a time.
 * A 429 ("retry after N") holds that chat's queue for N seconds and then resends the same
 * message, so nothing is lost and nothing overtakes it; a network error or a 5xx is retried
 * with backoff. Only a permanent refusal (the member blocked the bot, the chat is gone: 4xx
 * other than 429) drops a message. Each chat's queue is bounded: past MAX_PER_CHAT the oldest
 * is dropped and counted, so a long Telegram outage cannot eat the memory.
 */
import type { Logger } from "@pesan/shared/observability";
import type { Lifecycle } from "@pesan/shared/runtime";
import type { MonitorMetrics } from "../metrics.ts";

export const MAX_PER_CHAT = 500;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** How long close() lets queued messages go out before it gives up on them. */
const DRAIN_MS = 2000;

export type SendFailure = { kind: "wait"; ms: number } | { kind: "retry" } | { kind: "drop"; reason: string };

/**
 * node-telegram-bot-api's errors, read by their fields (errorCode, parameters.retry_after) rather
 * than by class, so a copy of the library loaded twice (ESM and CJS) classifies the same.
 */
export function classifySendError(err: unknown): SendFailure {
  const e = err as { errorCode?: unknown; parameters?: { retry_after?: unknown }; description?: unknown; message?: unknown };
  if (typeof e?.errorCode === "number") {
    if (e.errorCode === 429) {
      const s = typeof e.parameters?.retry_after === "number" ? e.parameters.retry_after : 1;
      return { kind: "wait", ms: Math.max(0, s) * 1000 };
    }
    if (e.errorCode >= 500) return { kind: "retry" };
    return { kind: "drop", reason: `${e.errorCode} ${String(e.description ?? e.message ?? "")}`.trim() };
  }
  // NetworkError, TimeoutError, a malformed answer: Telegram may not have it, so try again.
  return { kind: "retry" };
}

export interface OutboxDeps {
  /** Rejects with the library's error; the signal aborts a send in flight at close(). */
  send: (chatId: number, text: string, signal: AbortSignal) => Promise<void>;
  logger: Logger;
  metrics?: MonitorMetrics;
  /** Injected by tests; resolves early (without error) when the signal aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

interface Chat {
  queue: string[];
  worker: Promise<void> | undefined;
}

export class Outbox implements Lifecycle {
  readonly name = "telegram-outbox";
  private readonly deps: OutboxDeps;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly chats = new Map<number, Chat>();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(deps: OutboxDeps) {
    this.deps = deps;
    this.sleep = deps.sleep ?? abortableSleep;
  }

  async start(): Promise<void> {}

  /** Queues a message; false if the outbox is closed. Never waits. */
  enqueue(chatId: number, text: string): boolean {
    if (this.closed) return false;
    let chat = this.chats.get(chatId);
    if (!chat) this.chats.set(chatId, (chat = { queue: [], worker: undefined }));
    chat.queue.push(text);
    this.deps.metrics?.telegramQueued.inc();
    if (chat.queue.length > MAX_PER_CHAT) {
      // Not the head: it may be in flight right now.
      chat.queue.splice(1, 1);
      this.deps.metrics?.telegramQueued.dec();
      this.deps.metrics?.telegramMessages.inc({ outcome: "dropped" });
      this.deps.logger.warn({ chatId }, "telegram queue full for this chat: oldest waiting message dropped");
    }
    chat.worker ??= this.drain(chatId, chat);
    return true;
  }

  /** Messages waiting (in every chat), the one being sent included. */
  size(): number {
    let n = 0;
    for (const c of this.chats.values()) n += c.queue.length;
    return n;
  }

  private async drain(chatId: number, chat: Chat): Promise<void> {
    let failures = 0;
    try {
      while (chat.queue.length > 0 && !this.abort.signal.aborted) {
        const text = chat.queue[0]!;
        try {
          await this.deps.send(chatId, text, this.abort.signal);
          failures = 0;
          chat.queue.shift();
          this.deps.metrics?.telegramQueued.dec();
          this.deps.metrics?.telegramMessages.inc({ outcome: "sent" });
          continue;
        } catch (e) {
          if (this.abort.signal.aborted) break;
          const f = classifySendError(e);
          if (f.kind === "drop") {
            chat.queue.shift();
            this.deps.metrics?.telegramQueued.dec();
            this.deps.metrics?.telegramMessages.inc({ outcome: "refused" });
            this.deps.logger.warn({ chatId, reason: f.reason }, "telegram refused a message; dropped");
            continue;
          }
          if (f.kind === "wait") {
            this.deps.metrics?.telegramMessages.inc({ outcome: "rate_limited" });
            this.deps.logger.info({ chatId, retryAfterMs: f.ms }, "telegram rate limit: holding this chat's queue");
            await this.sleep(f.ms, this.abort.signal);
          } else {
            failures += 1;
            this.deps.metrics?.telegramMessages.inc({ outcome: "retried" });
            if (failures === 1) this.deps.logger.warn({ chatId, err: e }, "cannot send to telegram; retrying");
            await this.sleep(Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (failures - 1)), this.abort.signal);
          }
        }
      }
    } finally {
      chat.worker = undefined;
      if (chat.queue.length === 0) this.chats.delete(chatId);
    }
  }

  /** Lets queued messages go for up to DRAIN_MS, then stops; what is left is logged, not sent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const workers = () => [...this.chats.values()].map((c) => c.worker).filter((w): w is Promise<void> => w !== undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(workers()), new Promise<void>((r) => (timer = setTimeout(r, DRAIN_MS)))]);
    clearTimeout(timer);
    this.abort.abort();
    await Promise.all(workers());
    const left = this.size();
    if (left > 0) this.deps.logger.warn({ left }, "telegram messages not sent before the stop");
  }
}

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
