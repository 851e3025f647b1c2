/**
 * Tells the members what is down, every alert interval, and once when it is back; and once when
 * a threshold is crossed or cleared. Only the lease holder does (see lease.ts), so two
 * replicas send each alert once. It works from this replica's own view (monitor.down()), which
 * every replica keeps by probing everything itself, and from the shared alert records, so a
 * new leader neither repeats an alert early nor forgets one it owes.
 */
import type { Logger } from "@pesan/shared/observability";
import type { Lifecycle } from "@pesan/shared/runtime";
import { planAlerts, type AlertRecord } from "./alert-plan.ts";
import { formatDownAlert, formatRecovery, formatThreshold } from "../telegram/bot-format.ts";
import type { MonitorEvent } from "./events.ts";
import type { Lease } from "./lease.ts";
import type { MonitorMetrics } from "../metrics.ts";
import type { Monitor } from "../monitor.ts";
import type { Outbox } from "../telegram/outbox.ts";
import type { BotState } from "./shared-state.ts";
import type { Silences } from "./silence-store.ts";
import { suppressedSet } from "./suppression.ts";

export interface AlerterDeps {
  monitor: Monitor;
  lease: Lease;
  outbox: Outbox;
  state: BotState;
  /** The chats to alert (every registered member). */
  recipients: () => Promise<number[]>;
  logger: Logger;
  now: () => Date;
  metrics?: MonitorMetrics;
  /** Mutes, acks and maintenance windows: what they cover gets no alerts (see alert-plan.ts). */
  silences?: Silences;
}

/** A recovery time is kept this long for the next tick to pick up. */
const UP_MEMORY_MS = 10 * 60_000;

export class Alerter implements Lifecycle {
  readonly name = "telegram-alerts";
  private readonly deps: AlerterDeps;
  private readonly intervalMs: number;
  /** Loaded from the shared state when leadership begins; undefined while not leader. */
  private records: Map<string, AlertRecord> | undefined;
  private readonly upAt = new Map<string, Date>();
  /** Outages that ended because the component left the config or was scaled away, not because it recovered. */
  private readonly gone = new Set<string>();
  private readonly sending = new Set<Promise<void>>();
  private lastRecipients: number[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private started = false;
  private closed = false;
  private readonly onEvent = (e: MonitorEvent) => this.event(e);

  constructor(deps: AlerterDeps, opts: { intervalMs: number }) {
    this.deps = deps;
    this.intervalMs = opts.intervalMs;
  }

  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    this.deps.monitor.events.on("event", this.onEvent);
    this.deps.lease.onChange(() => this.kick());
    this.kick();
  }

  private event(e: MonitorEvent): void {
    if (e.kind === "up") {
      this.upAt.set(e.component, e.at);
      if (e.status === "gone") this.gone.add(e.component);
      this.clearAck(e.component);
    }
    if (e.kind === "down") this.gone.delete(e.component);
    if (e.kind === "down" || e.kind === "up") return this.kick();
    if (!this.deps.lease.mayAlert() || this.closed) return;
    // Thresholds are told once each way; there is nothing to remind about. A silenced one is not told at all.
    const p = (this.deps.silences ? this.deps.silences.reason(e.component, this.deps.now()) : Promise.resolve(undefined))
      .then((held) => (held ? undefined : this.broadcast([formatThreshold(e, this.deps.now())], "threshold")))
      .catch((err: unknown) => this.deps.logger.error({ err }, "threshold alert failed"))
      .finally(() => this.sending.delete(p));
    this.sending.add(p);
  }

  /**
   * An ack lasts until its component recovers. Every replica with a bot clears it (the DELETE is
   * idempotent), so it ends even if the leader changes meanwhile.
   */
  private clearAck(component: string): void {
    const silences = this.deps.silences;
    if (!silences) return;
    const p = silences.store
      .clearAck(component)
      .then((cleared) => {
        if (cleared) this.deps.logger.info({ component }, "recovered: its ack is cleared");
      })
      .catch((err: unknown) => this.deps.logger.warn({ err, component }, "cannot clear the ack of a recovered component"))
      .finally(() => this.sending.delete(p));
    // close() waits for it like for a send, so the pool is not closed under it.
    this.sending.add(p);
  }

  /** Runs a tick now, or right after the one in hand. */
  kick(): void {
    if (this.closed || !this.started) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.tick()
      .catch((err: unknown) => {
        this.deps.logger.error({ err }, "alert tick failed");
        // The tick schedules the next one only when it gets that far: a failed one (Redis or
        // Postgres away) must not leave the alerts asleep until some event wakes them.
        this.schedule(undefined);
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async tick(): Promise<void> {
    const { lease, monitor, state, logger } = this.deps;
    let nextDueAt: number | undefined;
    this.deps.metrics?.telegramLeader.set(lease.isLeader() ? 1 : 0);
    if (!lease.mayAlert()) {
      // A follower forgets: when it leads again, the shared records are the truth.
      this.records = undefined;
    } else {
      if (!this.records) {
        try {
          this.records = await state.loadAlerts();
        } catch (err) {
          logger.warn({ err }, "cannot read the shared alert records; starting from none");
          this.records = new Map();
        }
      }
      // Who to tell is read before the plan, not after: the plan's clock reading is the alert's
      // time (the cadence a successor continues), so nothing slow may sit between the two.
      const chats = monitor.down().length > 0 || this.records.size > 0 ? await this.recipients() : [];
      // Read before the clock, for the same reason; the store caches and never throws.
      const active = monitor.down().length > 0 && this.deps.silences ? await this.deps.silences.active(this.deps.now()) : [];
      const now = this.deps.now().getTime();
      const down = monitor.down();
      const plan = planAlerts(this.records, down, this.upAt, now, this.intervalMs, suppressedSet(down.map((d) => d.component), active));
      this.records = plan.records;
      nextDueAt = plan.nextDueAt;
      for (const c of plan.removed) this.upAt.delete(c);
      for (const c of plan.removed) this.gone.delete(c);
      const nowDate = new Date(now);
      const messages: string[] = plan.recoveries.map((r) => formatRecovery(r.component, r.since, r.at, nowDate, this.gone.has(r.component)));
      if (plan.reminders.length > 0) messages.push(formatDownAlert(plan.reminders, nowDate));
      // Recorded before sending: a leader that dies meanwhile loses this round, never repeats it early.
      try {
        await state.saveAlerts(plan.changed, plan.removed);
      } catch (err) {
        logger.warn({ err }, "cannot store the alert records; a new leader may repeat an alert early");
      }
      if (plan.recoveries.length > 0) this.enqueue(chats, messages.slice(0, plan.recoveries.length), "up");
      if (plan.reminders.length > 0) this.enqueue(chats, messages.slice(plan.recoveries.length), "down");
    }
    for (const [c, at] of this.upAt) {
      if (this.deps.now().getTime() - at.getTime() <= UP_MEMORY_MS) continue;
      this.upAt.delete(c);
      this.gone.delete(c);
    }
    this.schedule(nextDueAt);
  }

  /** Sleeps until the next reminder is due, but never long: leadership may change meanwhile. */
  private schedule(nextDueAt: number | undefined): void {
    if (this.closed) return;
    const idle = Math.min(this.intervalMs, 1000);
    const wait = nextDueAt === undefined ? idle : Math.min(idle, Math.max(5, nextDueAt - this.deps.now().getTime()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, wait);
  }

  private async broadcast(messages: string[], kind: "down" | "up" | "threshold"): Promise<void> {
    if (messages.length === 0) return;
    this.enqueue(await this.recipients(), messages, kind);
  }

  private enqueue(chats: number[], messages: string[], kind: "down" | "up" | "threshold"): void {
    if (messages.length === 0) return;
    for (const chat of chats) for (const m of messages) this.deps.outbox.enqueue(chat, m);
    this.deps.metrics?.alerts.inc({ kind }, chats.length * messages.length);
  }

  /**
   * The members, or the last list read when the database cannot be asked: an outage of the
   * database (perhaps the very thing being alerted about) must not silence the alerts.
   */
  private async recipients(): Promise<number[]> {
    try {
      this.lastRecipients = await this.deps.recipients();
    } catch (err) {
      if (!this.lastRecipients) throw err;
      this.deps.logger.warn({ err, members: this.lastRecipients.length }, "cannot read the members; alerting the ones last known");
    }
    return this.lastRecipients;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.deps.monitor.events.off("event", this.onEvent);
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await Promise.all(this.sending);
  }
}
