/**
 * The event stream the alerting part consumes: one event per transition (down, up again,
 * threshold crossed, threshold cleared), in process through a typed EventEmitter and in the
 * monitor_events table.
 *
 * Component ids are `<kind>:<name>` built from config names only, so they stay bounded:
 * `host:web1` (SSH reachability), `host:web1/cpu` (a threshold), `service:web1/nginx`,
 * `http:router@10.0.0.5:9200` (one resolved address of a probed component), `messaging:msg1`.
 */
import { EventEmitter } from "node:events";
import type { Transition } from "./state.ts";

export type EventKind = Transition["kind"];

export interface MonitorEvent {
  component: string;
  kind: EventKind;
  at: Date;
  since: Date;
  /** The component's own status word: unreachable/reachable, On/Off, OK/FAIL/EXPIRED, down/up, high/normal. */
  status: string;
  /** The sample behind the event (a percentage, a delay in seconds), if any. */
  value: number | null;
  detail: string;
  /** One human line, e.g. for an SMS. */
  message: string;
}

export type MonitorEventMap = {
  event: [event: MonitorEvent];
};

export class MonitorEvents extends EventEmitter<MonitorEventMap> {}

export function eventFrom(t: Transition, status: string, value: number | null): MonitorEvent {
  return { component: t.component, kind: t.kind, at: t.at, since: t.since, status, value, detail: t.detail, message: describe(t, status, value) };
}

function describe(t: Transition, status: string, value: number | null): string {
  const v = value === null ? "" : ` (${value})`;
  const detail = t.detail ? `: ${t.detail}` : "";
  switch (t.kind) {
    case "down":
      return `DOWN ${t.component} is ${status} since ${t.since.toISOString()}${detail}`;
    case "up":
      if (status === "gone") return `GONE ${t.component} no longer reported${detail}`;
      return `UP ${t.component} is ${status} again after ${humanDuration(t.at.getTime() - t.since.getTime())} down`;
    case "threshold":
      return `HIGH ${t.component}${v} crossed its threshold${detail}`;
    case "clear":
      return `OK ${t.component}${v} back under its threshold after ${humanDuration(t.at.getTime() - t.since.getTime())}`;
  }
}

export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

/** The environment a command action runs with. */
export function eventEnv(e: MonitorEvent): Record<string, string> {
  return {
    PESAN_EVENT: e.kind,
    PESAN_COMPONENT: e.component,
    PESAN_STATUS: e.status,
    PESAN_VALUE: e.value === null ? "" : String(e.value),
    PESAN_SINCE: e.since.toISOString(),
    PESAN_AT: e.at.toISOString(),
    PESAN_DETAIL: e.detail,
    PESAN_MESSAGE: e.message,
  };
}

/** `*` matches any run of characters; everything else literally. */
export function matchesPattern(pattern: string, component: string): boolean {
  const re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
  return re.test(component);
}
