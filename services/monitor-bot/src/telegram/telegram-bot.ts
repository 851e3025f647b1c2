/**
 * The Telegram side: receives updates (long polling by the lease holder, or webhook POSTs on
 * any replica), runs them through bot-logic's rules, keeps members in Postgres, and answers
 * through the outbox, so replies and alerts to one chat keep their order and honour 429s.
 *
 * getUpdates accepts one caller per bot, so only the lease holder polls; the handled offset is
 * shared, so a new leader starts where the old one stopped, and every update id is handled
 * once whichever replica (or redelivery) brings it.
 */
import type { FastifyInstance } from "fastify";
import { Bot, longPoll, webhookCallback, type Update } from "node-telegram-bot-api";
import type { Logger } from "@pesan/shared/observability";
import type { Lifecycle } from "@pesan/shared/runtime";
import { codeMatches, decide, helpText, menuCommands, parseInput, type Decision, type Query, type SilenceQuery } from "./bot-logic.ts";
import { chunk, formatDuration, formatResource, formatStatus, formatTime } from "./bot-format.ts";
import type { Silences } from "../alerting/silence-store.ts";
import { covers } from "../alerting/suppression.ts";
import type { TelegramConfig } from "../config/config.ts";
import type { Lease } from "../alerting/lease.ts";
import type { MemberStore } from "./member-store.ts";
import type { MonitorMetrics } from "../metrics.ts";
import { abortableSleep, type Outbox } from "./outbox.ts";
import type { BotState } from "../alerting/shared-state.ts";
import type { HostView, StatusRow } from "../http/views.ts";

export interface TelegramBotDeps {
  config: TelegramConfig;
  bot: Bot;
  members: MemberStore;
  outbox: Outbox;
  lease: Lease;
  state: BotState;
  /** The latest readings of every target. */
  hosts: () => HostView[];
  /** Every component's UP/DOWN state (reads the history for up-since). */
  status: () => Promise<StatusRow[]>;
  logger: Logger;
  now: () => Date;
  metrics?: MonitorMetrics;
  /** Mutes and acks (/mute, /unmute, /ack) and what holds alerts now (/status). */
  silences?: Silences;
}

/** A Bot that sends through the outbox's retry logic, not the library's own. */
export function createBot(config: TelegramConfig): Bot {
  return new Bot(config.token, {
    ...(config.apiRoot ? { apiRoot: config.apiRoot } : {}),
    // The outbox retries sends (keeping per-chat order); longPoll retries getUpdates itself.
    maxRetries: 0,
    timeoutMs: 15_000,
    rateLimit: { global: config.sendRate },
  });
}

const POLL_RETRY_MS = 1000;

export class TelegramBot implements Lifecycle {
  readonly name = "telegram-bot";
  private readonly deps: TelegramBotDeps;
  private readonly bot: Bot;
  private readonly webhookHandler: ((request: Request) => Promise<Response>) | undefined;
  /** Aborted when this replica stops leading (or closes): ends that leadership's polling. */
  private pollAbort: AbortController | undefined;
  private polling: Promise<void> | undefined;
  private webhookCleared = false;
  private readonly stopping = new AbortController();
  private preparing: Promise<void> | undefined;
  private username: string | undefined;
  private menuSet = false;
  private started = false;
  private closed = false;

  constructor(deps: TelegramBotDeps) {
    this.deps = deps;
    this.bot = deps.bot;
    this.bot.use(async (ctx) => this.onUpdate(ctx.update));
    // Handler errors are ours to log; the update is consumed (a redelivery would fail the same way).
    this.bot.catch((err, ctx) => {
      deps.metrics?.telegramUpdates.inc({ outcome: "failed" });
      deps.logger.error({ err, updateId: ctx.update.update_id }, "telegram update failed");
      // Silence would look like the bot ignoring them; the member can simply send it again.
      if (ctx.chatId !== undefined) deps.outbox.enqueue(ctx.chatId, "Sorry, that failed on our side. Please try again in a moment.");
    });
    const hook = deps.config.mode === "webhook" ? deps.config.webhook : undefined;
    this.webhookHandler = hook ? webhookCallback(this.bot, { secretToken: hook.secret }) : undefined;
  }

  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    // In the background: an offline or slow Telegram must not hold up the monitor's start.
    this.preparing = this.prepare(this.stopping.signal);
    if (this.deps.config.mode === "polling") {
      this.deps.lease.onChange(() => this.syncPolling());
      this.syncPolling();
    }
  }

  /**
   * Learns our @username (to tell /cmd@us from /cmd@other in groups), registers the webhook and
   * sets the command menu; retried until done. The webhook comes first: without it no update
   * arrives, while a missing menu only hides the command list.
   */
  private async prepare(signal: AbortSignal): Promise<void> {
    const { config, logger } = this.deps;
    let webhookSet = !(config.mode === "webhook" && config.webhook?.url);
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        this.username ??= (await this.bot.api.getMe(AbortSignal.any([signal, AbortSignal.timeout(10_000)]))).username;
        if (!webhookSet) {
          await this.bot.api.setWebhook(
            { url: config.webhook!.url!, secret_token: config.webhook!.secret, allowed_updates: ["message"] },
            AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
          );
          webhookSet = true;
          logger.info({ url: config.webhook!.url }, "telegram webhook registered");
        }
        if (!this.menuSet) {
          // The menu Telegram shows beside the text field: the same list for every chat (who
          // may use what is checked on each command).
          await this.bot.api.setMyCommands({ commands: menuCommands() }, AbortSignal.any([signal, AbortSignal.timeout(10_000)]));
          this.menuSet = true;
        }
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (attempt === 0) logger.warn({ err }, "cannot reach telegram (getMe/setWebhook/setMyCommands); retrying in the background");
        await abortableSleep(Math.min(60_000, 1000 * 2 ** attempt), signal);
      }
    }
  }

  /** Checked before the body is even read, so strangers cannot make us parse anything. */
  secretMatches(header: unknown): boolean {
    const secret = this.deps.config.webhook?.secret;
    return secret !== undefined && typeof header === "string" && codeMatches(header, secret);
  }

  /** The webhook route's handler (a web Request in, a Response out): 401 on a wrong secret. */
  async webhook(request: Request): Promise<Response> {
    if (!this.webhookHandler) return new Response("webhook mode is off", { status: 404 });
    if (!this.started || this.closed) return new Response("starting or stopping", { status: 503 });
    return this.webhookHandler(request);
  }

  /** Polls while this replica leads; stops when it does not. */
  private syncPolling(): void {
    if (this.closed || !this.deps.lease.isLeader()) {
      this.pollAbort?.abort();
      return;
    }
    if (this.polling) return;
    const ac = new AbortController();
    this.pollAbort = ac;
    this.polling = this.pollWhileLeader(ac.signal).finally(() => {
      this.polling = undefined;
      // Leadership may have come back while the last loop wound down.
      if (!this.closed && this.deps.lease.isLeader()) this.syncPolling();
    });
  }

  private async pollWhileLeader(signal: AbortSignal): Promise<void> {
    const { logger, config, state } = this.deps;
    logger.info("polling telegram for updates");
    while (!signal.aborted && this.deps.lease.isLeader()) {
      try {
        // getUpdates answers 409 while a webhook is set.
        if (!this.webhookCleared) {
          await this.bot.api.deleteWebhook({}, AbortSignal.any([signal, AbortSignal.timeout(10_000)]));
          this.webhookCleared = true;
        }
        let offset: number | undefined;
        try {
          offset = await state.offset();
        } catch (err) {
          logger.warn({ err }, "cannot read the shared update offset; Telegram's own confirmation applies");
        }
        const options = {
          timeout: config.pollTimeoutSeconds,
          allowedUpdates: ["message"],
          ...(offset !== undefined ? { offset } : {}),
          onError: (err: unknown) => logger.warn({ err }, "getUpdates failed; retrying"),
        };
        // Our own signal, not bot.stop(): it also ends a poll that had not begun yet.
        await this.bot.startPolling(longPoll(this.bot.api, options, signal));
      } catch (err) {
        if (signal.aborted) break;
        logger.warn({ err }, "telegram polling stopped with an error; restarting");
        await abortableSleep(POLL_RETRY_MS, signal);
      }
    }
    logger.info("stopped polling telegram");
  }

  /** One update from either source: de-duplicated, then decided, stored and answered. */
  private async onUpdate(update: Update): Promise<void> {
    const { state, metrics, logger } = this.deps;
    let first = true;
    try {
      first = await state.firstSeen(update.update_id);
    } catch (err) {
      logger.warn({ err }, "cannot check the update against the shared log; handling it");
    }
    if (!first) {
      metrics?.telegramUpdates.inc({ outcome: "duplicate" });
      return;
    }
    if ("message" in update && update.message.text !== undefined) await this.onMessage(update.message.chat.id, update.message.text, update.message.from?.username);
    metrics?.telegramUpdates.inc({ outcome: "handled" });
    await state.setOffset(update.update_id + 1).catch((err: unknown) => logger.warn({ err }, "cannot store the update offset"));
  }

  private async onMessage(chatId: number, text: string, username: string | undefined): Promise<void> {
    const { members, config } = this.deps;
    const member = await members.get(chatId);
    const decision = decide(chatId, member, parseInput(text, this.username), { now: this.deps.now(), adminCode: config.adminCode, username });
    const replies = [...decision.replies];
    if (!(await this.store(chatId, member !== undefined, decision))) {
      // Another replica created the row for the same /start an instant earlier; it answers.
      return;
    }
    if (decision.query) replies.push(await this.answer(decision.query, chatId));
    for (const r of replies) for (const part of chunk(r)) this.deps.outbox.enqueue(chatId, part);
  }

  /** False when a concurrent /start already created this chat's row. */
  private async store(chatId: number, existed: boolean, d: Decision): Promise<boolean> {
    const { members } = this.deps;
    if (d.member === undefined) return true;
    if (d.member === null) {
      await members.delete(chatId);
      return true;
    }
    if (!existed) return members.create(d.member);
    await members.save(d.member);
    return true;
  }

  private async answer(q: Query, chatId: number): Promise<string> {
    const now = this.deps.now();
    switch (q.kind) {
      case "help":
        return helpText(q.admin);
      case "status":
        return formatStatus(await this.deps.status(), now, this.deps.silences ? await this.deps.silences.active(now) : []);
      case "mute":
      case "unmute":
      case "ack":
        return this.silence(q, chatId, now);
      default:
        return formatResource(q, this.deps.hosts(), now);
    }
  }

  /**
   * A mute must cover something the monitor knows (a typo would silence nothing and say
   * nothing); an ack, something down now. Store errors propagate: the member is told it failed.
   */
  private async silence(q: SilenceQuery, chatId: number, now: Date): Promise<string> {
    const silences = this.deps.silences;
    if (!silences) return "Silences are not available on this monitor.";
    const rows = await this.deps.status();
    const c = q.component;
    if (q.kind === "unmute") {
      const removed = await silences.store.unmute(c);
      if (removed.length === 0) return `${c} is not muted or acknowledged (send /status for what is silenced). A maintenance window ends only by the config.`;
      return `🔔 ${c}: ${removed.map((k) => (k === "mute" ? "mute" : "ack")).join(" and ")} ended by ${q.by}. Alerts about it resume${rows.some((r) => r.state === "down" && covers(c, r.component)) ? "; it is still DOWN" : ""}.`;
    }
    if (q.kind === "mute") {
      // A threshold id (host:web1/cpu) is a sub-id of a known component.
      const known = rows.some((r) => covers(c, r.component) || c.startsWith(`${r.component}/`));
      if (!known) return `No component ${c.includes("*") ? "matches" : "is named"} ${c}. Send /status for the component ids (a * matches anything).`;
      const until = new Date(now.getTime() + q.durationMs);
      await silences.store.mute(c, until, chatId, q.by);
      return `🔕 ${c} muted for ${formatDuration(q.durationMs)}, until ${formatTime(until, now)}, by ${q.by}. /unmute ${c} ends it early.`;
    }
    const down = rows.filter((r) => r.state === "down" && covers(c, r.component)).map((r) => r.component);
    if (down.length === 0) return `${c} is not down: nothing to acknowledge. (/mute silences something ahead of time.)`;
    // One ack per component, each cleared by its own recovery.
    for (const id of down) await silences.store.ack(id, chatId, q.by);
    // A component that recovered between the status read and the insert had its recovery (and
    // its ack clearing) before the ack existed: the ack would outlive the outage and hold the
    // next one. Read again now that the acks are stored, and clear those no longer down.
    const still = new Set((await this.deps.status()).filter((r) => r.state === "down").map((r) => r.component));
    for (const id of down) if (!still.has(id)) await silences.store.clearAck(id);
    return `👍 Acknowledged by ${q.by}: ${down.join(", ")}. No more alerts about ${down.length === 1 ? "it" : "them"} until ${down.length === 1 ? "it recovers" : "each recovers"}; the recovery is announced.`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopping.abort();
    this.pollAbort?.abort();
    await this.polling;
    await this.preparing;
  }
}

/**
 * POST {path} on the monitor's fastify server, for nginx to forward Telegram's webhook calls to.
 * Only the secret header and the parsed update are passed on: the library's callback checks
 * the header (401 when wrong or missing) and runs the update.
 */
export function registerWebhook(app: FastifyInstance, path: string, bot: () => TelegramBot | undefined): void {
  const onRequest = async (req: { headers: Record<string, unknown> }, reply: { code(n: number): { send(body: string): unknown } }) => {
    if (!bot()?.secretMatches(req.headers["x-telegram-bot-api-secret-token"])) return reply.code(401).send("Unauthorized");
  };
  app.post(path, { onRequest }, async (req, reply) => {
    const target = bot()!;
    const secret = req.headers["x-telegram-bot-api-secret-token"];
    const request = new Request(`http://monitor${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(typeof secret === "string" ? { "x-telegram-bot-api-secret-token": secret } : {}) },
      body: JSON.stringify(req.body ?? null),
    });
    const res = await target.webhook(request);
    return reply.code(res.status).header("content-type", "text/plain; charset=utf-8").send(await res.text());
  });
}
