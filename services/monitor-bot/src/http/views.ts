/**
 * Read-only views of the monitor's latest state, shaped for people: the bot's answers and the
 * dashboard both start from these, so a phone and a browser never disagree. No I/O here; the
 * one fact that needs the history (since when a component has been up) is passed in.
 */
import type { HostMetric } from "../config/config.ts";
import { componentId, hostId, messagingId, serviceId, type Monitor } from "../monitor.ts";
import type { SystemFacts } from "../probes/facts.ts";

export interface MetricView {
  /** Percent; null when the last probe failed, has not run, or the host is unreachable (old numbers would look live). */
  value: number | null;
  at: Date | undefined;
  error: string | undefined;
  /** Bytes behind the percentage (RAM, disk) when the probe tells it; null with the value. */
  total?: number | null;
  /** CPU only: the 1, 5 and 15 minute load averages when the probe read them. */
  load?: [number, number, number] | null;
}

export interface HostView {
  name: string;
  /** undefined until the first SSH attempt (a local target is reachable from its first probe). */
  reachable: boolean | undefined;
  /** When it became unreachable. */
  since: Date | undefined;
  cpu: MetricView;
  mem: MetricView;
  hdd: MetricView;
  services: Array<{ name: string; status: "On" | "Off"; at: Date }>;
  /** Processor and system, read every facts interval; undefined until first read. */
  facts: SystemFacts | undefined;
}

export interface StatusRow {
  component: string;
  state: "up" | "down" | "unknown";
  /** down: since the outage began; up: since the last recovery on record, if any. */
  since: Date | undefined;
  detail: string;
}

export function hostViews(monitor: Monitor, targets: readonly string[]): HostView[] {
  const services = monitor.serviceStates();
  const out: HostView[] = [];
  for (const name of targets) {
    const h = monitor.host(name);
    if (!h) continue;
    const metric = (m: HostMetric): MetricView => {
      const r = h.metrics[m];
      const live = h.reachable !== false && r !== undefined && r.error === undefined;
      return { value: live ? r.value : null, at: r?.at, error: h.reachable === false ? "unreachable" : r?.error, total: live ? (r.total ?? null) : null, load: live ? (r.load ?? null) : null };
    };
    out.push({
      name,
      reachable: h.reachable,
      since: h.since,
      cpu: metric("cpu"),
      mem: metric("mem"),
      hdd: metric("hdd"),
      services: [...(services.get(name) ?? new Map()).entries()].map(([service, s]) => ({ name: service, status: s.status, at: s.at })),
      facts: monitor.hostFacts(name),
    });
  }
  return out;
}

/** Every component this replica knows, down ones first (oldest outage first), then by name. */
export function statusRows(monitor: Monitor, targets: readonly string[], upSince: ReadonlyMap<string, Date>): StatusRow[] {
  const down = new Map(monitor.down().map((d) => [d.component, d]));
  const rows = new Map<string, StatusRow>();
  const add = (component: string, ok: boolean | undefined, detail: string, downSince?: Date) => {
    const d = down.get(component);
    const state = d ? "down" : ok === undefined ? "unknown" : ok ? "up" : "down";
    const since = state === "down" ? (d?.since ?? downSince) : state === "up" ? upSince.get(component) : undefined;
    rows.set(component, { component, state, since, detail: d?.detail ?? detail });
  };
  for (const h of hostViews(monitor, targets)) {
    add(hostId(h.name), h.reachable, h.reachable === false ? "unreachable" : "");
    for (const s of h.services) add(serviceId(h.name, s.name), s.status === "On", s.status === "Off" ? "Off" : "", h.reachable === false ? h.since : undefined);
  }
  for (const c of monitor.componentStates()) add(componentId(c.type, c.name, c.address), c.ok, c.ok ? "" : c.detail);
  for (const [probe, m] of monitor.messagingStates()) add(messagingId(probe), m.status === "OK", m.status === "OK" ? "" : `${m.status}${m.detail && m.detail !== m.status ? `: ${m.detail}` : ""}`);
  // Outages of things not probed yet in this process (restored from the history at start).
  for (const d of down.values()) if (!rows.has(d.component)) rows.set(d.component, { component: d.component, state: "down", since: d.since, detail: d.detail });
  const rank = { down: 0, unknown: 1, up: 2 } as const;
  return [...rows.values()].sort(
    (a, b) => rank[a.state] - rank[b.state] || (a.state === "down" ? (a.since?.getTime() ?? 0) - (b.since?.getTime() ?? 0) : 0) || a.component.localeCompare(b.component),
  );
}
