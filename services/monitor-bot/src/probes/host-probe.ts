/**
 * The SSH probes of one target: CPU, memory, disk and each service, each on its own schedule,
 * all over the target's one reused connection. Any attempt that cannot get a session marks the
 * target unreachable at once, so an unreachable host shows within one probe interval.
 */
import type { Logger } from "@pesan/shared/observability";
import { HOST_METRICS, type HostMetric, type TargetConfig } from "../config/config.ts";
import type { Monitor } from "../monitor.ts";
import { PARSERS } from "./parsers.ts";
import { collectFacts, commandFactSource, type FactSource } from "./facts.ts";
import { Every } from "./schedule.ts";
import { SshConnectError, type SshConnector, type SshSession } from "./ssh.ts";

export type HostSink = Pick<Monitor, "hostReachable" | "hostMetric" | "service" | "setHostFacts">;

export interface HostProbeDeps {
  sink: HostSink;
  connect: SshConnector;
  logger: Logger;
}

export class HostProbe {
  readonly name: string;
  private readonly target: TargetConfig;
  private readonly deps: HostProbeDeps;
  private readonly session: SshSession;
  private readonly loops: Every[];
  private readonly facts: FactSource;
  private closing = false;

  constructor(target: TargetConfig, deps: HostProbeDeps) {
    this.name = `host:${target.name}`;
    this.target = target;
    this.deps = deps;
    const logger = deps.logger.child({ target: target.name });
    this.session = deps.connect(target, logger);
    this.facts = commandFactSource(target.facts.commands, (c) => this.session.exec(c, target.timeoutMs), (e) => e instanceof SshConnectError);
    this.loops = [
      // Rarely: the processor and the installed system do not change between probes.
      new Every(`${target.name}/facts`, target.facts.intervalMs, () => this.probeFacts(), logger),
      ...HOST_METRICS.map((m) => new Every(`${target.name}/${m}`, target.metrics[m].intervalMs, () => this.probeMetric(m), logger)),
      ...target.services.map((s) => new Every(`${target.name}/${s.name}`, s.intervalMs, () => this.probeService(s.name, s.command), logger)),
    ];
  }

  async start(): Promise<void> {
    for (const l of this.loops) await l.start();
  }

  private async probeMetric(metric: HostMetric): Promise<void> {
    const started = performance.now();
    const { command } = this.target.metrics[metric];
    let value: number | null = null;
    let error: string | undefined;
    try {
      const r = await this.session.exec(command, this.target.timeoutMs);
      this.deps.sink.hostReachable(this.target.name, true);
      if (r.code !== 0) throw new Error(`exit code ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().slice(0, 300)}` : ""}`);
      value = PARSERS[metric](r.stdout);
    } catch (e) {
      error = this.failure(e);
    }
    if (this.closing) return;
    this.deps.sink.hostMetric(this.target.name, metric, value, performance.now() - started, error);
  }

  /** A failed command fails only its own fact; a failed connection marks the host unreachable. */
  private async probeFacts(): Promise<void> {
    try {
      const facts = await collectFacts(this.facts, () => new Date());
      if (this.closing) return;
      this.deps.sink.setHostFacts(this.target.name, facts);
    } catch (e) {
      this.failure(e);
    }
  }

  private async probeService(service: string, command: string): Promise<void> {
    const started = performance.now();
    let on: boolean | undefined;
    let detail = "";
    try {
      const r = await this.session.exec(command, this.target.timeoutMs);
      this.deps.sink.hostReachable(this.target.name, true);
      on = r.code === 0;
      if (!on) detail = `exit code ${r.code}${r.stdout.trim() ? `: ${r.stdout.trim().slice(0, 200)}` : ""}`;
    } catch (e) {
      detail = this.failure(e);
      // A command that ran but could not finish says the service is not healthy; a host we
      // cannot reach says nothing about it (the host's own event covers that).
      if (!(e instanceof SshConnectError)) on = false;
    }
    if (this.closing) return;
    this.deps.sink.service(this.target.name, service, on, performance.now() - started, detail);
  }

  /** Reports a connection failure as unreachability; returns the error text. */
  private failure(e: unknown): string {
    const message = (e as Error).message ?? String(e);
    if (e instanceof SshConnectError && !this.closing) this.deps.sink.hostReachable(this.target.name, false, message);
    return message;
  }

  /** Closing the session first cuts short any command in flight; their results are not reported. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([this.session.close(), ...this.loops.map((l) => l.close())]);
  }
}
