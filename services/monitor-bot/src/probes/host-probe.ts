/**
 * The probes of one target: CPU, memory, disk and each service, each on its own schedule. The
 * same probe serves both kinds of target, only the way to the host differs:
 *
 * - ssh: every command runs over the target's one reused connection. Any attempt that cannot
 *   get a session marks the target unreachable at once, so an unreachable host shows within
 *   one probe interval.
 * - local: this machine, no SSH (LocalHost). The metrics without a command read /proc and
 *   statfs directly and go through the same parsers; a command runs here through /bin/sh.
 *
 * A service is a command (exit code 0 = On, run on the host) or a network check from the
 * monitor (NetworkServiceProbe), whichever the config gives. The facts (/cpu, /system) are read
 * every facts interval, by the configured commands over SSH or from this machine's own files
 * (localFactSource), into the same collectFacts.
 */
import type { Logger } from "@pesan/shared/observability";
import { HOST_METRICS, type CommandService, type HostMetric, type TargetConfig } from "../config/config.ts";
import type { HostFacts, Monitor } from "../monitor.ts";
import type { Resolver } from "./component-probe.ts";
import { collectFacts, commandFactSource, type FactSource } from "./facts.ts";
import { LocalHost, localFactSource } from "./local.ts";
import { parseLoadavg, PARSERS, TOTALS } from "./parsers.ts";
import { Every } from "./schedule.ts";
import { NetworkServiceProbe } from "./service-probe.ts";
import { SshConnectError, type ExecResult, type SshConnector, type SshSession } from "./ssh.ts";

export type HostSink = Pick<Monitor, "hostReachable" | "hostMetric" | "service" | "serviceGone" | "downServiceReplicas" | "setHostFacts">;

export interface HostProbeDeps {
  sink: HostSink;
  connect: SshConnector;
  resolve: Resolver;
  logger: Logger;
  now: () => Date;
}

export class HostProbe {
  readonly name: string;
  private readonly target: TargetConfig;
  private readonly deps: HostProbeDeps;
  private readonly session: SshSession;
  private readonly local: LocalHost | undefined;
  private readonly network: NetworkServiceProbe[] = [];
  private readonly loops: Every[];
  private readonly facts: FactSource;
  private closing = false;

  constructor(target: TargetConfig, deps: HostProbeDeps) {
    this.name = `host:${target.name}`;
    this.target = target;
    this.deps = deps;
    const logger = deps.logger.child({ target: target.name });
    if (target.kind === "local") this.session = this.local = new LocalHost(target.disk);
    else this.session = deps.connect(target, logger);
    this.loops = HOST_METRICS.map((m) => new Every(`${target.name}/${m}`, target.metrics[m].intervalMs, () => this.probeMetric(m), logger));
    // The same facts either way: the configured commands over SSH, or this machine's own files.
    this.facts =
      target.kind === "local"
        ? localFactSource(this.local!, target.facts.commands, target.timeoutMs)
        : commandFactSource(target.facts.commands, (c) => this.session.exec(c, target.timeoutMs), (e) => e instanceof SshConnectError);
    // Rarely: the processor and the installed system do not change between probes.
    this.loops.unshift(new Every(`${target.name}/facts`, target.facts.intervalMs, () => this.probeFacts(), logger));
    for (const s of target.services) {
      let run: () => Promise<void>;
      if ("check" in s) {
        const probe = new NetworkServiceProbe(target.name, s, { sink: deps.sink, resolve: deps.resolve, logger, now: deps.now });
        this.network.push(probe);
        run = () => probe.run();
      } else run = () => this.probeService(s);
      this.loops.push(new Every(`${target.name}/${s.name}`, s.intervalMs, run, logger));
    }
  }

  async start(): Promise<void> {
    for (const p of this.network) p.seed();
    for (const l of this.loops) await l.start();
  }

  /**
   * Runs a command on the target's host: over its SSH connection, or here for a local target.
   * For probes of other facts (a small hook: they need not care which kind the target is).
   */
  exec(command: string, timeoutMs = this.target.timeoutMs): Promise<ExecResult> {
    return this.session.exec(command, timeoutMs);
  }

  private async probeMetric(metric: HostMetric): Promise<void> {
    const started = performance.now();
    const { command } = this.target.metrics[metric];
    let value: number | null = null;
    let facts: HostFacts = {};
    let error: string | undefined;
    const read = (text: string) => {
      value = PARSERS[metric](text);
      facts = { total: TOTALS[metric](text), ...(metric === "cpu" ? { load: parseLoadavg(text) } : {}) };
    };
    try {
      if (this.local) this.deps.sink.hostReachable(this.target.name, true);
      if (command === undefined) {
        // A local target's built-in reading: the file's text for the same parser the SSH command's output gets.
        const r = await this.local!.read(metric, this.target.timeoutMs);
        if ("text" in r) read(r.text);
        else {
          value = r.percent;
          facts = { total: r.totalBytes };
        }
      } else {
        const r = await this.session.exec(command, this.target.timeoutMs);
        this.deps.sink.hostReachable(this.target.name, true);
        if (r.code !== 0) throw new Error(`exit code ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().slice(0, 300)}` : ""}`);
        read(r.stdout);
      }
    } catch (e) {
      value = null;
      facts = {};
      error = this.failure(e);
    }
    if (this.closing) return;
    this.deps.sink.hostMetric(this.target.name, metric, value, performance.now() - started, error, facts);
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

  private async probeService(s: CommandService): Promise<void> {
    const started = performance.now();
    let on: boolean | undefined;
    let detail = "";
    try {
      const r = await this.session.exec(s.command, this.target.timeoutMs);
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
    this.deps.sink.service(this.target.name, s.name, on, performance.now() - started, detail);
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
    for (const p of this.network) p.close();
    await Promise.all([this.session.close(), ...this.loops.map((l) => l.close())]);
  }
}
