/**
 * Whether alerts about a component are held right now, and why: a mute (for a while), an ack
 * (until the component recovers) or a maintenance window from the config (one-off or weekly).
 * Pure: the alerter, the dashboard and the bot's /status all ask the same question with the same
 * clock, silences (from Postgres, shared by every replica) and windows (from the config).
 *
 * A silence names a component id, or a pattern where `*` matches anything (as in actions). It
 * also covers the component's sub-ids: a mute of `host:web1` holds `host:web1/cpu` too.
 */
import { matchesPattern } from "./events.ts";

export type SilenceKind = "mute" | "ack" | "maintenance";

/** A mute or an ack, as stored. */
export interface Silence {
  /** A component id or a pattern. */
  component: string;
  kind: "mute" | "ack";
  /** A mute's end; null for an ack (it ends when the component recovers). */
  until: Date | null;
  /** Who set it (a member's name), for the dashboard. */
  by: string;
  at: Date;
}

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export type MaintenanceWindow = { name: string | undefined; components: string[] } & (
  | { kind: "once"; from: Date; to: Date }
  /** Every week on day at HH:MM UTC (minuteOfDay), for durationMs. */
  | { kind: "weekly"; day: Weekday; minuteOfDay: number; durationMs: number }
);

/** One silence in effect now, shaped for people (dashboard, /status). */
export interface ActiveSilence {
  component: string;
  kind: SilenceKind;
  /** When it ends; null: an ack, until the component recovers. */
  until: Date | null;
  /** A member's name, or `maintenance <name>` / `maintenance` for a config window. */
  by: string;
}

const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;

/** Whether a silence's component (id or pattern) covers this component id. */
export function covers(pattern: string, component: string): boolean {
  if (matchesPattern(pattern, component)) return true;
  return component.startsWith(`${pattern}/`) || (pattern.includes("*") && matchesPattern(`${pattern}/*`, component));
}

/** The occurrence of a window that contains now, if any. */
export function windowOccurrence(w: MaintenanceWindow, now: Date): { from: Date; to: Date } | undefined {
  const t = now.getTime();
  if (w.kind === "once") return t >= w.from.getTime() && t < w.to.getTime() ? { from: w.from, to: w.to } : undefined;
  // Monday 00:00 UTC of this week (1970-01-01 was a Thursday: day 3 counting from Monday).
  const daysSinceMonday = (Math.floor(t / DAY_MS) + 3) % 7;
  const monday = Math.floor(t / DAY_MS) * DAY_MS - daysSinceMonday * DAY_MS;
  let start = monday + WEEKDAYS.indexOf(w.day) * DAY_MS + w.minuteOfDay * 60_000;
  // The latest start not after now; a window lasts at most a week, so no earlier one can reach now.
  if (start > t) start -= WEEK_MS;
  return t < start + w.durationMs ? { from: new Date(start), to: new Date(start + w.durationMs) } : undefined;
}

const windowBy = (w: MaintenanceWindow) => (w.name ? `maintenance ${w.name}` : "maintenance");

/** Mutes not yet expired, every ack, and the windows in effect now. */
export function activeSilences(now: Date, silences: readonly Silence[], windows: readonly MaintenanceWindow[]): ActiveSilence[] {
  const out: ActiveSilence[] = [];
  for (const s of silences) {
    if (s.kind === "mute" && (s.until === null || s.until.getTime() <= now.getTime())) continue;
    out.push({ component: s.component, kind: s.kind, until: s.until, by: s.by });
  }
  for (const w of windows) {
    const o = windowOccurrence(w, now);
    if (o) for (const c of w.components) out.push({ component: c, kind: "maintenance", until: o.to, by: windowBy(w) });
  }
  return out;
}

/**
 * Why alerts about this component are held now, or undefined when they are not. A mute wins
 * over an ack, and either over a window, so the answer names what a person set first.
 */
export function suppressedBy(component: string, active: readonly ActiveSilence[]): ActiveSilence | undefined {
  const rank: Record<SilenceKind, number> = { mute: 0, ack: 1, maintenance: 2 };
  let best: ActiveSilence | undefined;
  for (const s of active) {
    if (!covers(s.component, component)) continue;
    if (!best || rank[s.kind] < rank[best.kind]) best = s;
  }
  return best;
}

/** The components of a list that are held now. */
export function suppressedSet(components: Iterable<string>, active: readonly ActiveSilence[]): Set<string> {
  const out = new Set<string>();
  if (active.length === 0) return out;
  for (const c of components) if (suppressedBy(c, active)) out.add(c);
  return out;
}
