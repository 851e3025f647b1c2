/**
 * A stand-in for Telegram's Bot API on 127.0.0.1 (the only fake in the monitor's tests): the
 * bot's apiRoot points here. Every call is `POST /bot<token>/<method>` with a form (or JSON)
 * body, answered `{ok, result}` or `{ok: false, error_code, description, parameters}`.
 *
 * - getUpdates: long polls (up to `maxWaitMs`, however long the bot asks), drops updates below
 *   the offset it is given (that is how Telegram confirms), and answers 409 to a second
 *   concurrent caller, as Telegram does, counting it in `conflicts`.
 * - sendMessage: records chat, text and time; `rateLimit(k, s)` makes the next k calls answer
 *   429 with retry_after s.
 * - setMyCommands / getMyCommands / deleteMyCommands: the menu, kept in `myCommands` (checked
 *   as Telegram does: 1-32 of a-z 0-9 _, descriptions 1-256 characters, at most 100).
 * - getMe, setWebhook, deleteWebhook, getWebhookInfo.
 * The test plays the users with `say(chatId, text)`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SentMessage {
  chatId: number;
  text: string;
  at: number;
}

interface Waiter {
  offset: number;
  res: ServerResponse;
  timer: NodeJS.Timeout;
}

export class FakeTelegram {
  readonly token: string;
  readonly sent: SentMessage[] = [];
  /** Every call in order: method and parsed params. */
  readonly calls: Array<{ method: string; params: Record<string, string>; at: number }> = [];
  readonly maxWaitMs: number;
  conflicts = 0;
  rateLimited = 0;
  /** The sendMessage calls answered 429. */
  readonly limitedCalls: SentMessage[] = [];
  webhook: { url: string; secret: string | undefined } | undefined;
  /** The menu the bot set with setMyCommands (default scope), [] until then. */
  myCommands: Array<{ command: string; description: string }> = [];
  private server: Server | undefined;
  private updates: Array<{ update_id: number; message: Record<string, unknown> }> = [];
  private nextUpdateId = 1000;
  private nextMessageId = 1;
  private waiter: Waiter | undefined;
  private limit = { calls: 0, retryAfter: 1 };
  url = "";

  /** Where it listens: 127.0.0.1, or a bridge network's gateway address for containers. */
  readonly host: string;

  constructor(opts: { token?: string; maxWaitMs?: number; host?: string } = {}) {
    this.token = opts.token ?? "123456:TEST-fake-token-abcdefghijklmnop";
    this.maxWaitMs = opts.maxWaitMs ?? 300;
    this.host = opts.host ?? "127.0.0.1";
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, this.host, resolve));
    this.url = `http://${this.host}:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    if (this.waiter) this.answerPoll();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** A user in chat `chatId` (a private chat, so the user id is the chat id) sends `text`. */
  say(chatId: number, text: string, username = `user${chatId}`): number {
    const id = this.nextUpdateId++;
    this.updates.push({
      update_id: id,
      message: {
        message_id: this.nextMessageId++,
        date: Math.floor(Date.now() / 1000),
        chat: { id: chatId, type: "private", first_name: username },
        from: { id: chatId, is_bot: false, first_name: username, username },
        text,
        ...(text.startsWith("/") ? { entities: [{ type: "bot_command", offset: 0, length: text.split(/\s/)[0]!.length }] } : {}),
      },
    });
    if (this.waiter) this.answerPoll();
    return id;
  }

  /**
   * Says `text` in `chatId` and resolves with the next `count` messages the bot sends there
   * (waiting at most timeoutMs, then failing with what did arrive).
   */
  async ask(chatId: number, text: string, count = 1, timeoutMs = 5000): Promise<string[]> {
    const before = this.texts(chatId).length;
    this.say(chatId, text);
    const deadline = Date.now() + timeoutMs;
    while (this.texts(chatId).length < before + count) {
      if (Date.now() > deadline) throw new Error(`no ${count} replies to ${JSON.stringify(text)} in ${timeoutMs} ms; got ${JSON.stringify(this.texts(chatId).slice(before))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    // A little longer: an unexpected extra reply must show up in the test, not in the next one.
    await new Promise((r) => setTimeout(r, 50));
    return this.texts(chatId).slice(before);
  }

  /** The next k sendMessage calls answer 429 with retry_after `seconds`. */
  rateLimit(k: number, seconds: number): void {
    this.limit = { calls: k, retryAfter: seconds };
  }

  /** Texts sent to one chat, oldest first. */
  texts(chatId: number): string[] {
    return this.sent.filter((m) => m.chatId === chatId).map((m) => m.text);
  }

  /** Updates not yet confirmed by an offset. */
  pending(): number {
    return this.updates.length;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(req.url ?? "");
      if (!m || req.method !== "POST") return send(res, 404, { ok: false, error_code: 404, description: "Not Found" });
      if (m[1] !== this.token) return send(res, 401, { ok: false, error_code: 401, description: "Unauthorized" });
      const params = parseBody(req.headers["content-type"] ?? "", Buffer.concat(chunks).toString("utf8"));
      this.calls.push({ method: m[2]!, params, at: Date.now() });
      this.method(m[2]!, params, res);
    });
  }

  private method(method: string, p: Record<string, string>, res: ServerResponse): void {
    switch (method) {
      case "getMe":
        return send(res, 200, { ok: true, result: { id: 123456, is_bot: true, first_name: "pesan test", username: "pesan_test_bot" } });
      case "setWebhook":
        this.webhook = { url: p.url ?? "", secret: p.secret_token };
        return send(res, 200, { ok: true, result: true });
      case "deleteWebhook":
        this.webhook = undefined;
        return send(res, 200, { ok: true, result: true });
      case "getWebhookInfo":
        return send(res, 200, { ok: true, result: { url: this.webhook?.url ?? "", has_custom_certificate: false, pending_update_count: this.updates.length } });
      case "setMyCommands":
        return this.setMyCommands(p, res);
      case "getMyCommands":
        return send(res, 200, { ok: true, result: this.myCommands });
      case "deleteMyCommands":
        this.myCommands = [];
        return send(res, 200, { ok: true, result: true });
      case "sendMessage":
        return this.sendMessage(p, res);
      case "getUpdates":
        return this.getUpdates(p, res);
      default:
        return send(res, 404, { ok: false, error_code: 404, description: `Not Found: method ${method}` });
    }
  }

  private setMyCommands(p: Record<string, string>, res: ServerResponse): void {
    let list: unknown;
    try {
      list = JSON.parse(p.commands ?? "");
    } catch {
      return send(res, 400, { ok: false, error_code: 400, description: "Bad Request: can't parse commands JSON object" });
    }
    const ok =
      Array.isArray(list) &&
      list.length <= 100 &&
      list.every((c: { command?: unknown; description?: unknown }) => typeof c.command === "string" && /^[a-z0-9_]{1,32}$/.test(c.command) && typeof c.description === "string" && c.description.length >= 1 && c.description.length <= 256);
    if (!ok) return send(res, 400, { ok: false, error_code: 400, description: "Bad Request: BOT_COMMAND_INVALID" });
    this.myCommands = (list as Array<{ command: string; description: string }>).map((c) => ({ command: c.command, description: c.description }));
    send(res, 200, { ok: true, result: true });
  }

  private sendMessage(p: Record<string, string>, res: ServerResponse): void {
    if (this.limit.calls > 0) {
      this.limit.calls -= 1;
      this.rateLimited += 1;
      this.limitedCalls.push({ chatId: Number(p.chat_id), text: p.text ?? "", at: Date.now() });
      const s = this.limit.retryAfter;
      return send(res, 429, { ok: false, error_code: 429, description: `Too Many Requests: retry after ${s}`, parameters: { retry_after: s } });
    }
    const chatId = Number(p.chat_id);
    if (!Number.isFinite(chatId) || !p.text) return send(res, 400, { ok: false, error_code: 400, description: "Bad Request: chat_id and text are required" });
    this.sent.push({ chatId, text: p.text, at: Date.now() });
    send(res, 200, { ok: true, result: { message_id: this.nextMessageId++, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: "private" }, text: p.text } });
  }

  private getUpdates(p: Record<string, string>, res: ServerResponse): void {
    if (this.webhook) return send(res, 409, { ok: false, error_code: 409, description: "Conflict: can't use getUpdates method while webhook is active" });
    if (this.waiter) {
      this.conflicts += 1;
      return send(res, 409, { ok: false, error_code: 409, description: "Conflict: terminated by other getUpdates request" });
    }
    const offset = p.offset !== undefined ? Number(p.offset) : 0;
    this.updates = this.updates.filter((u) => u.update_id >= offset);
    const wait = Math.min(this.maxWaitMs, Number(p.timeout ?? 0) * 1000);
    if (this.updates.length > 0 || wait <= 0) return send(res, 200, { ok: true, result: this.updates.slice(0, Number(p.limit ?? 100)) });
    const timer = setTimeout(() => this.answerPoll(), wait);
    this.waiter = { offset, res, timer };
    res.on("close", () => {
      if (this.waiter?.res === res) {
        clearTimeout(this.waiter.timer);
        this.waiter = undefined;
      }
    });
  }

  private answerPoll(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = undefined;
    clearTimeout(w.timer);
    send(w.res, 200, { ok: true, result: this.updates.filter((u) => u.update_id >= w.offset) });
  }
}

function parseBody(type: string, body: string): Record<string, string> {
  if (!body) return {};
  if (type.includes("application/json")) {
    const o = JSON.parse(body) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
  }
  return Object.fromEntries(new URLSearchParams(body));
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
