/**
 * A service checked over the network from the monitor (http, udp, tcp, postgres, redis), with
 * the component probes' checks: no command on the host, so it works for a local target and for
 * an SSH target alike. Without replicas the service is On when any address of the name passes
 * (as a client would connect). With replicas each address is a service of its own,
 * `<name>@<address>`, kept for forgetAfter once the name stops resolving to it (Replicas).
 */
import { isIP } from "node:net";
import type { Logger } from "@pesan/shared/observability";
import type { NetworkService } from "../config/config.ts";
import { formatDuration } from "../config/duration.ts";
import type { Monitor } from "../monitor.ts";
import { checkComponent, endpointOf, resolveHost, type Resolver } from "./component-probe.ts";
import { Replicas } from "./replicas.ts";
import { withTimeout } from "./schedule.ts";

export type ServiceSink = Pick<Monitor, "service" | "serviceGone" | "downServiceReplicas">;

export interface ServiceProbeDeps {
  sink: ServiceSink;
  resolve: Resolver;
  logger: Logger;
  now: () => Date;
}

/** The service id of one replica: the address without brackets or port (ports are the config's). */
export const replicaName = (service: string, address: string) => `${service}@${address}`;

export class NetworkServiceProbe {
  private readonly target: string;
  private readonly s: NetworkService;
  private readonly deps: ServiceProbeDeps;
  private readonly replicas: Replicas;
  private bareReported = false;
  private closing = false;

  constructor(target: string, s: NetworkService, deps: ServiceProbeDeps) {
    this.target = target;
    this.s = s;
    this.deps = deps;
    this.replicas = new Replicas(s.check.forgetAfterMs);
  }

  /** Replicas down before a restart are checked again, and forgotten in time, even if nothing resolves to them now. */
  seed(): void {
    if (!this.s.replicas) return;
    const down = this.deps.sink.downServiceReplicas(this.target, this.s.name).filter((a) => isIP(a));
    this.replicas.seed(
      down.map((address) => ({ address, family: isIP(address) })),
      this.deps.now().getTime(),
    );
  }

  async run(): Promise<void> {
    const { host, port } = endpointOf(this.s.check);
    const { resolved, error } = await resolveHost(host, this.deps.resolve, this.s.check.timeoutMs);
    if (this.closing) return;
    if (!this.s.replicas) {
      const started = performance.now();
      let detail = error ?? "";
      let on = false;
      // In order, as a client would: the first address that passes makes the service On.
      for (const a of resolved) {
        const r = await this.checkOne(a.address, a.family, port);
        detail = r.detail;
        if ((on = r.ok)) break;
      }
      if (this.closing) return;
      this.deps.sink.service(this.target, this.s.name, on, performance.now() - started, detail);
      return;
    }
    const { check, forgotten } = this.replicas.round(resolved, this.deps.now().getTime());
    for (const address of forgotten) {
      this.deps.sink.serviceGone(this.target, replicaName(this.s.name, address), `${host} no longer resolves to it (forgotten after ${formatDuration(this.s.check.forgetAfterMs)})`);
    }
    if (check.length === 0) {
      // Nothing to check: the service as a whole is Off, so a stack that is all gone still shows.
      this.bareReported = true;
      this.deps.sink.service(this.target, this.s.name, false, 0, error ?? `${host} resolves to no address`);
      return;
    }
    if (this.bareReported) {
      this.bareReported = false;
      this.deps.sink.serviceGone(this.target, this.s.name, `${host} resolves again`, "up");
    }
    await Promise.all(
      check.map(async ({ address, family, current }) => {
        const started = performance.now();
        const r = await this.checkOne(address, family, port);
        if (this.closing) return;
        const detail = current ? r.detail : `${r.detail} (${host} no longer resolves to this address)`;
        this.deps.sink.service(this.target, replicaName(this.s.name, address), r.ok, performance.now() - started, detail);
      }),
    );
  }

  private async checkOne(address: string, family: number, port: number): Promise<{ ok: boolean; detail: string }> {
    try {
      return { ok: true, detail: await withTimeout(checkComponent(this.s.check, { address, family, port }), this.s.check.timeoutMs + 500, "check") };
    } catch (e) {
      return { ok: false, detail: (e as Error).message || String(e) };
    }
  }

  close(): void {
    this.closing = true;
  }
}
