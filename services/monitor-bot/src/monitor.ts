/**
 * The monitor's core: every probe reports here. It keeps the latest state for the API, turns
 * results into transitions (StatusTracker, ThresholdTracker), and fans each transition out to
 * the event stream, the history, the actions and the metrics. Nothing here waits on I/O: the
 * history is buffered and actions are queued, so a probe's report returns at once.
 */
import type { Logger } from "@pesan/shared/observability";
import type { ComponentConfig, HostMetric, MonitorConfig, ThresholdRule } from "./config/config.ts";
import { eventFrom, MonitorEvents, type MonitorEvent } from "./alerting/events.ts";
import type { MonitorMetrics } from "./metrics.ts";
import { StatusTracker, ThresholdTracker, type Transition } from "./alerting/state.ts";
import type { OpenCondition, SampleRow } from "./history/store.ts";
import type { SystemFacts } from "./probes/facts.ts";

export type MessagingStatus = "OK" | "FAIL" | "EXPIRED";

export interface Reading {
  value: number | null;
  at: Date;
  error: string | undefined;
  /** The size behind the percentage in bytes (RAM, disk), when the probe's output tells it. */
  total?: number | undefined;
  /** The 1, 5 and 15 minute load averages, read with the CPU when the output has them. */
  load?: [number, number, number] | undefined;
}

/** What a host probe's output told besides the percentage. */
export interface HostFacts {
  total?: number | undefined;
  load?: [number, number, number] | undefined;
}

export interface ServiceReading {
  status: "On" | "Off";
  at: Date;
  detail: string;
}

export interface ComponentReading {
  type: ComponentConfig["type"];
  name: string;
  address: string | undefined;
  ok: boolean;
  at: Date;
  latencyMs: number;
  detail: string;
}

export interface MessagingReading {
  status: MessagingStatus;
  at: Date;
  delaySeconds: number | null;
  expirySeconds: number;
  detail: string;
}

export interface MonitorDeps {
  config: MonitorConfig;
  logger: Logger;
  now: () => Date;
  metrics?: MonitorMetrics;
  history?: { sample(row: SampleRow): void; event(e: MonitorEvent): void };
  actions?: { dispatch(e: MonitorEvent): number };
}

export const hostId = (target: string) => `host:${target}`;
export const serviceId = (target: string, service: string) => `service:${target}/${service}`;
export const componentId = (type: string, name: string, address: string | undefined) => `${type}:${name}${address === undefined ? "" : `@${address}`}`;
export const messagingId = (probe: string) => `messaging:${probe}`;

export class Monitor {
  readonly events = new MonitorEvents();
  private readonly deps: MonitorDeps;
  private readonly status: StatusTracker;
  private readonly thresholds = new ThresholdTracker();
  private readonly hosts = new Map<string, { metrics: Partial<Record<HostMetric, Reading>> }>();
  private readonly services = new Map<string, Map<string, ServiceReading>>();
  private readonly components = new Map<string, ComponentReading>();
  private readonly messagingState = new Map<string, MessagingReading>();
  private readonly facts = new Map<string, SystemFacts>();
  private readonly hostRules: Map<string, Partial<Record<HostMetric, ThresholdRule>>>;

  constructor(deps: MonitorDeps) {
    this.deps = deps;
    this.status = new StatusTracker(deps.config.alerts);
    this.hostRules = new Map(deps.config.targets.map((t) => [t.name, t.thresholds]));
    for (const t of deps.config.targets) this.hosts.set(t.name, { metrics: {} });
  }

  /**
   * Restores open outages and thresholds from the history, so a restart neither repeats nor
   * loses them. One about something the config no longer names is closed instead (`up`/`gone`
   * or `clear`): nothing would ever probe it again.
   */
  seed(open: OpenCondition[]): void {
    for (const c of open) {
      if (!this.configured(c.component)) {
        const at = this.deps.now();
        const detail = "no longer in the config";
        if (c.kind === "down") this.transition({ component: c.component, kind: "up", at, since: c.since, detail }, "gone", null);
        else this.transition({ component: c.component, kind: "clear", at, since: c.since, detail }, "gone", null);
      } else if (c.kind === "down") this.status.seedDown(c.component, c.since, c.detail);
      else if (c.kind === "threshold") this.thresholds.seedHigh(c.component, c.since);
    }
  }

  /** Whether a component id belongs to something the config names. */
  private configured(id: string): boolean {
    const { targets, components, messaging } = this.deps.config;
    return (
      targets.some(
        (t) =>
          id === hostId(t.name) ||
          id.startsWith(`${hostId(t.name)}/`) ||
          t.services.some((s) => id === serviceId(t.name, s.name) || ("replicas" in s && s.replicas && id.startsWith(`${serviceId(t.name, s.name)}@`))),
      ) ||
      components.some((c) => id === componentId(c.type, c.name, undefined) || id.startsWith(`${componentId(c.type, c.name, undefined)}@`)) ||
      messaging.some((m) => id === messagingId(m.name) || id.startsWith(`${messagingId(m.name)}/`))
    );
  }

  /** Addresses of a component that are down now (seeded ones included), for its probe to keep probing. */
  downAddresses(type: string, name: string): string[] {
    return this.downAfter(`${componentId(type, name, undefined)}@`);
  }

  /** Replicas (addresses) of a `replicas: true` service that are down now, for its probe to keep checking. */
  downServiceReplicas(target: string, service: string): string[] {
    return this.downAfter(`${serviceId(target, service)}@`);
  }

  /** What follows the prefix in the ids down now. */
  private downAfter(prefix: string): string[] {
    return this.status
      .down()
      .filter((d) => d.component.startsWith(prefix))
      .map((d) => d.component.slice(prefix.length));
  }

  // ---- reports from the probes -------------------------------------------------------------

  /** Whether an SSH session to the target could be had (fed by every probe attempt). */
  hostReachable(target: string, ok: boolean, detail = ""): void {
    const at = this.deps.now();
    this.deps.metrics?.hostUp.set({ target }, ok ? 1 : 0);
    this.transition(this.status.observe(hostId(target), ok, at, detail), ok ? "reachable" : "unreachable", null);
  }

  hostMetric(target: string, metric: HostMetric, value: number | null, latencyMs: number, error?: string, facts: HostFacts = {}): void {
    const at = this.deps.now();
    const host = this.hosts.get(target);
    if (host) host.metrics[metric] = { value, at, error, total: facts.total, load: facts.load };
    if (value !== null) this.deps.metrics?.hostPercent.set({ target, resource: metric }, value);
    this.observeLatency(metric, value !== null, latencyMs);
    this.deps.history?.sample({ at, component: hostId(target), metric, value, ok: value !== null, latencyMs, detail: error ?? "" });
    const rule = this.hostRules.get(target)?.[metric];
    const t = this.thresholds.observe(`${hostId(target)}/${metric}`, value, rule, at);
    this.transition(t, t?.kind === "threshold" ? "high" : "normal", value);
  }

  /** The processor and system facts of a target, read every facts interval (not every probe). */
  setHostFacts(target: string, facts: SystemFacts): void {
    if (this.hosts.has(target)) this.facts.set(target, facts);
  }

  /** on undefined: the status could not be read (host unreachable); shown Off, no service event. */
  service(target: string, service: string, on: boolean | undefined, latencyMs: number, detail = ""): void {
    const at = this.deps.now();
    let byName = this.services.get(target);
    if (!byName) this.services.set(target, (byName = new Map()));
    byName.set(service, { status: on ? "On" : "Off", at, detail });
    this.deps.metrics?.serviceUp.set({ target, service }, on ? 1 : 0);
    this.observeLatency("service", on !== undefined, latencyMs);
    this.deps.history?.sample({ at, component: serviceId(target, service), metric: "status", value: on === undefined ? null : on ? 1 : 0, ok: on === true, latencyMs, detail });
    if (on === undefined) return;
    this.transition(this.status.observe(serviceId(target, service), on, at, detail), on ? "On" : "Off", null);
  }

  /**
   * A service replica (or the bare name of a `replicas: true` service) no longer reported: out
   * of /api/svcstats, and an open outage closed with `up`/`gone`, as componentGone does.
   */
  serviceGone(target: string, service: string, detail: string, status: "gone" | "up" = "gone"): void {
    const id = serviceId(target, service);
    const since = this.status.downSince(id);
    this.status.forget(id);
    this.services.get(target)?.delete(service);
    this.deps.metrics?.serviceUp.remove({ target, service });
    if (since) this.transition({ component: id, kind: "up", at: this.deps.now(), since, detail }, status, null);
  }

  component(c: ComponentConfig, address: string | undefined, ok: boolean, latencyMs: number, detail = ""): void {
    const at = this.deps.now();
    const id = componentId(c.type, c.name, address);
    this.components.set(id, { type: c.type, name: c.name, address, ok, at, latencyMs, detail });
    this.deps.metrics?.componentUp.set({ type: c.type, component: c.name, address: address ?? "" }, ok ? 1 : 0);
    this.observeLatency(c.type, ok, latencyMs);
    this.deps.history?.sample({ at, component: id, metric: "status", value: ok ? 1 : 0, ok, latencyMs, detail });
    this.transition(this.status.observe(id, ok, at, detail), ok ? "up" : "down", null);
  }

  /**
   * An address (or the bare name) no longer to be reported. If it was down, an `up` event with
   * status `gone` closes the outage, so the alerting does not nag about a removed replica forever.
   */
  componentGone(c: ComponentConfig, address: string | undefined, detail: string, status: "gone" | "up" = "gone"): void {
    const id = componentId(c.type, c.name, address);
    const since = this.status.downSince(id);
    this.status.forget(id);
    this.components.delete(id);
    this.deps.metrics?.componentUp.remove({ type: c.type, component: c.name, address: address ?? "" });
    if (since) this.transition({ component: id, kind: "up", at: this.deps.now(), since, detail }, status, null);
  }

  messaging(probe: string, status: MessagingStatus, delayMs: number | null, expiryMs: number, latencyMs: number, detail = ""): void {
    const at = this.deps.now();
    const delaySeconds = delayMs === null ? null : Math.round(delayMs) / 1000;
    this.messagingState.set(probe, { status, at, delaySeconds, expirySeconds: expiryMs / 1000, detail });
    for (const s of ["OK", "FAIL", "EXPIRED"] as const) this.deps.metrics?.messagingStatus.set({ probe, status: s }, s === status ? 1 : 0);
    this.deps.metrics?.messagingUp.set({ probe }, status === "OK" ? 1 : 0);
    if (delaySeconds !== null) this.deps.metrics?.messagingDelay.set({ probe }, delaySeconds);
    this.observeLatency("messaging", status === "OK", latencyMs);
    this.deps.history?.sample({ at, component: messagingId(probe), metric: "delay", value: delaySeconds, ok: status === "OK", latencyMs, detail: detail || status });
    this.transition(this.status.observe(messagingId(probe), status === "OK", at, detail || status), status, delaySeconds);
    const rule = this.deps.config.messaging.find((m) => m.name === probe)?.thresholds.delay;
    const t = this.thresholds.observe(`${messagingId(probe)}/delay`, delaySeconds, rule, at);
    this.transition(t, t?.kind === "threshold" ? "high" : "normal", delaySeconds);
  }

  // ---- views for the API -------------------------------------------------------------------

  hasTarget(target: string): boolean {
    return this.hosts.has(target);
  }

  /** The target's last readings; reachable undefined until the first attempt. */
  host(target: string): { reachable: boolean | undefined; since: Date | undefined; metrics: Partial<Record<HostMetric, Reading>> } | undefined {
    const h = this.hosts.get(target);
    if (!h) return undefined;
    const health = this.status.health(hostId(target));
    return { reachable: health === "unknown" ? undefined : health === "up", since: this.status.downSince(hostId(target)), metrics: h.metrics };
  }

  /** The target's last facts (model, cores, load, OS, kernel, uptime); undefined until first read. */
  hostFacts(target: string): SystemFacts | undefined {
    return this.facts.get(target);
  }

  serviceStates(): ReadonlyMap<string, ReadonlyMap<string, ServiceReading>> {
    return this.services;
  }

  componentStates(): ComponentReading[] {
    return [...this.components.values()];
  }

  messagingStates(): ReadonlyMap<string, MessagingReading> {
    return this.messagingState;
  }

  /** What is down now, oldest outage first (this process's view). */
  down(): Array<{ component: string; since: Date; detail: string }> {
    return this.status.down();
  }

  // -------------------------------------------------------------------------------------------

  private observeLatency(probe: string, ok: boolean, ms: number): void {
    this.deps.metrics?.probeSeconds.observe({ probe, outcome: ok ? "ok" : "fail" }, ms / 1000);
  }

  private transition(t: Transition | undefined, status: string, value: number | null): void {
    if (!t) return;
    const e = eventFrom(t, status, value);
    this.deps.metrics?.events.inc({ kind: e.kind });
    const log = { component: e.component, kind: e.kind, status: e.status, since: e.since.toISOString(), value: e.value, detail: e.detail };
    if (e.kind === "down" || e.kind === "threshold") this.deps.logger.warn(log, e.message);
    else this.deps.logger.info(log, e.message);
    this.deps.history?.event(e);
    this.deps.actions?.dispatch(e);
    try {
      this.events.emit("event", e);
    } catch (err) {
      // A listener's bug must not take a probe down with it.
      this.deps.logger.error({ err, component: e.component }, "event listener threw");
    }
  }
}
