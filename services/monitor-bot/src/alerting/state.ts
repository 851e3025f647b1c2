/**
 * The two pure state machines behind every alert. Both report only transitions, never every
 * sample: a component that stays down produces one `down`, and a value that stays high one
 * `threshold`. Repeating reminders is the alerting layer's job.
 */
import type { ThresholdRule } from "../config/config-schema.ts";

export interface Transition {
  component: string;
  kind: "down" | "up" | "threshold" | "clear";
  at: Date;
  /** down: the first failed check of the streak; up: when it went down; threshold/clear: when it went high. */
  since: Date;
  detail: string;
}

type Health = "unknown" | "up" | "down";

interface ComponentState {
  health: Health;
  /** Start of the current failure streak (or of the outage, once down). */
  failingSince: Date | undefined;
  failures: number;
  successes: number;
  detail: string;
}

/**
 * Up/down with debouncing: `downAfter` consecutive failures make a component down,
 * `upAfter` consecutive successes make it up again. A component first seen healthy is up
 * without an event; one first seen failing goes down with an event.
 */
export class StatusTracker {
  private readonly downAfter: number;
  private readonly upAfter: number;
  private readonly states = new Map<string, ComponentState>();

  constructor(opts: { downAfter: number; upAfter: number }) {
    this.downAfter = Math.max(1, opts.downAfter);
    this.upAfter = Math.max(1, opts.upAfter);
  }

  observe(component: string, ok: boolean, at: Date, detail = ""): Transition | undefined {
    let s = this.states.get(component);
    if (!s) {
      s = { health: "unknown", failingSince: undefined, failures: 0, successes: 0, detail: "" };
      this.states.set(component, s);
    }
    if (ok) {
      s.failures = 0;
      if (s.health !== "down") {
        s.health = "up";
        s.failingSince = undefined;
        s.detail = detail;
        return undefined;
      }
      s.successes += 1;
      if (s.successes < this.upAfter) return undefined;
      const since = s.failingSince ?? at;
      s.health = "up";
      s.failingSince = undefined;
      s.successes = 0;
      s.detail = detail;
      return { component, kind: "up", at, since, detail };
    }
    s.successes = 0;
    s.detail = detail;
    if (s.health === "down") return undefined;
    s.failingSince ??= at;
    s.failures += 1;
    if (s.failures < this.downAfter) return undefined;
    s.health = "down";
    return { component, kind: "down", at, since: s.failingSince, detail };
  }

  /** Restores a component known (from the history) to be down since `since`, without an event. */
  seedDown(component: string, since: Date, detail = ""): void {
    this.states.set(component, { health: "down", failingSince: since, failures: this.downAfter, successes: 0, detail });
  }

  /** Drops a component; returns what it was, so the caller can close an open outage. */
  forget(component: string): Health {
    const h = this.states.get(component)?.health ?? "unknown";
    this.states.delete(component);
    return h;
  }

  health(component: string): Health {
    return this.states.get(component)?.health ?? "unknown";
  }

  downSince(component: string): Date | undefined {
    const s = this.states.get(component);
    return s?.health === "down" ? s.failingSince : undefined;
  }

  /** Components currently down, oldest outage first. */
  down(): Array<{ component: string; since: Date; detail: string }> {
    const out: Array<{ component: string; since: Date; detail: string }> = [];
    for (const [component, s] of this.states) if (s.health === "down") out.push({ component, since: s.failingSince!, detail: s.detail });
    return out.sort((a, b) => a.since.getTime() - b.since.getTime() || a.component.localeCompare(b.component));
  }
}

/** Fires when a value reaches `high`; clears only once it drops below `high - hysteresis`. */
export class ThresholdTracker {
  private readonly high = new Map<string, Date>();

  observe(component: string, value: number | null | undefined, rule: ThresholdRule | undefined, at: Date): Transition | undefined {
    if (value === null || value === undefined || !rule) return undefined;
    const since = this.high.get(component);
    if (since === undefined) {
      if (value < rule.high) return undefined;
      this.high.set(component, at);
      return { component, kind: "threshold", at, since: at, detail: `${value} >= ${rule.high}` };
    }
    if (value >= rule.high - rule.hysteresis) return undefined;
    this.high.delete(component);
    return { component, kind: "clear", at, since, detail: `${value} < ${rule.high - rule.hysteresis} (${rule.high} - hysteresis ${rule.hysteresis})` };
  }

  seedHigh(component: string, since: Date): void {
    this.high.set(component, since);
  }

  isHigh(component: string): boolean {
    return this.high.has(component);
  }
}
