/**
 * Runs the configured actions for an event: a shell command (the event in PESAN_* environment
 * variables) or an HTTP call (an SMS gateway, a webhook). dispatch() only queues: the probe loop
 * never waits for an action, and a slow, failing or hanging action is logged, counted and
 * killed at its timeout without touching the monitoring.
 */
import { spawn } from "node:child_process";
import type { Logger } from "@pesan/shared/observability";
import type { ActionConfig } from "../config/config.ts";
import { eventEnv, matchesPattern, type MonitorEvent } from "./events.ts";
import type { MonitorMetrics } from "../metrics.ts";

const MAX_QUEUE = 1000;
const OUTPUT_LIMIT = 4096;
const CLOSE_GRACE_MS = 3000;

export interface ActionRunnerDeps {
  actions: ActionConfig[];
  logger: Logger;
  metrics?: MonitorMetrics;
  maxConcurrent: number;
  fetch?: typeof fetch;
}

type Outcome = "ok" | "failed" | "timeout";

interface Running {
  done: Promise<void>;
  abort: () => void;
}

/** `{component}`-style placeholders of an HTTP action's URL, URL-encoded. */
export function expandUrl(template: string, e: MonitorEvent): string {
  const env = eventEnv(e);
  const values: Record<string, string> = {
    event: env.PESAN_EVENT!,
    component: env.PESAN_COMPONENT!,
    status: env.PESAN_STATUS!,
    value: env.PESAN_VALUE!,
    since: env.PESAN_SINCE!,
    at: env.PESAN_AT!,
    detail: env.PESAN_DETAIL!,
    message: env.PESAN_MESSAGE!,
  };
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in values ? encodeURIComponent(values[k]!) : m));
}

export class ActionRunner {
  readonly name = "actions";
  private readonly deps: ActionRunnerDeps;
  private readonly queue: Array<{ action: ActionConfig; event: MonitorEvent }> = [];
  private readonly running = new Set<Running>();
  private closed = false;

  constructor(deps: ActionRunnerDeps) {
    this.deps = deps;
  }

  async start(): Promise<void> {}

  /** Queues every action that matches; returns how many. Never throws, never waits. */
  dispatch(event: MonitorEvent): number {
    if (this.closed) return 0;
    let n = 0;
    for (const action of this.deps.actions) {
      if (!action.on.includes(event.kind) || !action.components.some((p) => matchesPattern(p, event.component))) continue;
      n++;
      if (this.queue.length >= MAX_QUEUE) {
        this.deps.metrics?.actions.inc({ action: action.name, outcome: "dropped" });
        this.deps.logger.error({ action: action.name, component: event.component, kind: event.kind }, "action queue full, action dropped");
        continue;
      }
      this.queue.push({ action, event });
    }
    this.pump();
    return n;
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.queue.length > 0 || this.running.size > 0) await Promise.all([...this.running].map((r) => r.done));
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.deps.maxConcurrent && this.queue.length > 0) {
      const { action, event } = this.queue.shift()!;
      const controller = new AbortController();
      const entry: Running = { done: Promise.resolve(), abort: () => controller.abort() };
      entry.done = this.run(action, event, controller.signal)
        .then((o) => this.finished(action, event, o.outcome, o.info))
        .catch((e: unknown) => this.finished(action, event, "failed", { error: (e as Error).message }))
        .finally(() => {
          this.running.delete(entry);
          this.pump();
        });
      this.running.add(entry);
    }
  }

  private finished(action: ActionConfig, event: MonitorEvent, outcome: Outcome, info: Record<string, unknown>): void {
    this.deps.metrics?.actions.inc({ action: action.name, outcome });
    const fields = { action: action.name, component: event.component, kind: event.kind, outcome, ...info };
    if (outcome === "ok") this.deps.logger.info(fields, "action ran");
    else this.deps.logger.warn(fields, "action failed");
  }

  private run(action: ActionConfig, event: MonitorEvent, signal: AbortSignal): Promise<{ outcome: Outcome; info: Record<string, unknown> }> {
    return action.command !== undefined ? this.runCommand(action, action.command, event, signal) : this.runHttp(action, event, signal);
  }

  private runCommand(action: ActionConfig, command: string, event: MonitorEvent, signal: AbortSignal): Promise<{ outcome: Outcome; info: Record<string, unknown> }> {
    return new Promise((resolve) => {
      const started = Date.now();
      // Its own process group, so a timeout kills the whole pipeline, not only the shell.
      const child = spawn("/bin/sh", ["-c", command], {
        env: { ...process.env, ...eventEnv(event), PESAN_ACTION: action.name },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let output = "";
      const collect = (d: Buffer) => {
        if (output.length < OUTPUT_LIMIT) output += d.toString("utf8");
      };
      child.stdout.on("data", collect);
      child.stderr.on("data", collect);
      let timedOut = false;
      const kill = () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, action.timeoutMs);
      const onAbort = () => kill();
      signal.addEventListener("abort", onAbort, { once: true });
      child.once("error", (err) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve({ outcome: "failed", info: { error: err.message } });
      });
      child.once("close", (code, sig) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        const info = { ms: Date.now() - started, code, signal: sig, output: output.trim().slice(0, OUTPUT_LIMIT) };
        resolve({ outcome: timedOut ? "timeout" : code === 0 ? "ok" : "failed", info });
      });
    });
  }

  private async runHttp(action: ActionConfig, event: MonitorEvent, signal: AbortSignal): Promise<{ outcome: Outcome; info: Record<string, unknown> }> {
    const http = action.http!;
    const url = expandUrl(http.url, event);
    const started = Date.now();
    const doFetch = this.deps.fetch ?? fetch;
    try {
      const res = await doFetch(url, {
        method: http.method,
        headers: { ...(http.method === "POST" ? { "content-type": "application/json" } : {}), ...http.headers },
        ...(http.method === "POST" ? { body: JSON.stringify({ ...event, at: event.at.toISOString(), since: event.since.toISOString() }) } : {}),
        signal: AbortSignal.any([signal, AbortSignal.timeout(action.timeoutMs)]),
      });
      // Drain the body so the connection is released; only its start is logged.
      const body = (await res.text()).slice(0, 300);
      return { outcome: res.ok ? "ok" : "failed", info: { ms: Date.now() - started, status: res.status, ...(res.ok ? {} : { body }) } };
    } catch (e) {
      const err = e as Error;
      const timeout = err.name === "TimeoutError";
      return { outcome: timeout ? "timeout" : "failed", info: { ms: Date.now() - started, error: err.message } };
    }
  }

  /** Drops what is queued, gives running actions a moment, then kills them. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.queue.length > 0) this.deps.logger.warn({ dropped: this.queue.length }, "shutting down: queued actions dropped");
    this.queue.length = 0;
    const all = Promise.all([...this.running].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((r) => {
      timer = setTimeout(r, CLOSE_GRACE_MS);
    });
    await Promise.race([all, grace]);
    clearTimeout(timer);
    for (const r of this.running) r.abort();
    await all;
  }
}
