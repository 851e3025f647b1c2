/**
 * Probes one configured component (an HTTP health URL, a UDP gateway, a TCP port, Postgres, Redis) at every
 * address its name resolves to, each reported on its own: under Compose a scaled service name
 * resolves to every replica, so one dead replica out of three shows as down.
 *
 * Docker's DNS drops a stopped container at once, so an address that stops resolving is still
 * probed (and so shown down) for forgetAfter before it is dropped; if it was down, dropping it
 * closes its outage with an `up`/`gone` event.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "@pesan/shared/observability";
import { checkHttp, checkPostgres, checkRedis, checkTcp, checkUdp, type Endpoint } from "./checks.ts";
import type { ComponentConfig } from "../config/config.ts";
import { formatDuration } from "../config/duration.ts";
import type { Monitor } from "../monitor.ts";
import { Replicas, type ResolvedAddress } from "./replicas.ts";
import { Every, withTimeout } from "./schedule.ts";

export type Resolver = (host: string) => Promise<Array<{ address: string; family: number }>>;

export const systemResolver: Resolver = (host) => lookup(host, { all: true, order: "verbatim" });

export type ComponentSink = Pick<Monitor, "component" | "componentGone" | "downAddresses">;

export interface ComponentProbeDeps {
  sink: ComponentSink;
  resolve: Resolver;
  logger: Logger;
  now: () => Date;
}

const DEFAULT_PORTS: Record<string, number> = { "http:": 80, "https:": 443, "postgres:": 5432, "postgresql:": 5432, "redis:": 6379, "rediss:": 6379 };

/** The name to resolve and the port to probe. */
export function endpointOf(c: ComponentConfig): { host: string; port: number } {
  if (c.type === "udp" || c.type === "tcp") {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(c.address)!;
    return { host: m[1]!, port: Number(m[2]) };
  }
  const u = new URL(c.url);
  return { host: u.hostname.replace(/^\[(.*)\]$/, "$1"), port: u.port ? Number(u.port) : DEFAULT_PORTS[u.protocol]! };
}

export function formatAddress(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** One check of one address; resolves with a short detail, rejects with the reason. */
export function checkComponent(c: ComponentConfig, ep: Endpoint): Promise<string> {
  switch (c.type) {
    case "http":
      return checkHttp(c.url, ep, c.timeoutMs);
    case "udp":
      return checkUdp(ep, c.timeoutMs);
    case "tcp":
      return checkTcp(ep, c.timeoutMs);
    case "postgres":
      return checkPostgres(c.url, ep, c.timeoutMs);
    case "redis":
      return checkRedis(c.url, ep, c.timeoutMs);
  }
}

/** The addresses of a check's host: an IP as is, a name through the resolver (bounded by the timeout). */
export async function resolveHost(host: string, resolve: Resolver, timeoutMs: number): Promise<{ resolved: ResolvedAddress[]; error: string | undefined }> {
  try {
    const resolved = isIP(host) ? [{ address: host, family: isIP(host) }] : await withTimeout(resolve(host), timeoutMs, `resolving ${host}`);
    return { resolved, error: resolved.length === 0 ? `${host} resolves to no address` : undefined };
  } catch (e) {
    return { resolved: [], error: `cannot resolve ${host}: ${(e as Error).message}` };
  }
}

export class ComponentProbe {
  readonly name: string;
  private readonly c: ComponentConfig;
  private readonly deps: ComponentProbeDeps;
  private readonly loop: Every;
  private readonly replicas: Replicas;
  private bareReported = false;
  private closing = false;

  constructor(c: ComponentConfig, deps: ComponentProbeDeps) {
    this.name = `${c.type}:${c.name}`;
    this.c = c;
    this.deps = deps;
    this.replicas = new Replicas(c.forgetAfterMs);
    this.loop = new Every(this.name, c.intervalMs, () => this.run(), deps.logger);
  }

  async start(): Promise<void> {
    // An address down before a restart is probed again (and forgotten in time) even if the
    // name no longer resolves to it; otherwise its outage would stay open forever.
    const seeded: ResolvedAddress[] = [];
    for (const a of this.deps.sink.downAddresses(this.c.type, this.c.name)) {
      const ip = /^\[?([^\]]+?)\]?:\d+$/.exec(a)?.[1];
      if (ip && isIP(ip)) seeded.push({ address: ip, family: isIP(ip) });
    }
    this.replicas.seed(seeded, this.deps.now().getTime());
    await this.loop.start();
  }

  /** One round: resolve, then check every known address at once. */
  async run(): Promise<void> {
    const { host, port } = endpointOf(this.c);
    const now = this.deps.now().getTime();
    const { resolved, error: resolveError } = await resolveHost(host, this.deps.resolve, this.c.timeoutMs);
    if (this.closing) return;
    const { check, forgotten } = this.replicas.round(resolved, now);
    for (const address of forgotten) {
      this.deps.sink.componentGone(this.c, formatAddress(address, port), `${host} no longer resolves to it (forgotten after ${formatDuration(this.c.forgetAfterMs)})`);
    }
    if (check.length === 0) {
      this.bareReported = true;
      this.deps.sink.component(this.c, undefined, false, 0, resolveError ?? `${host} resolves to no address`);
      return;
    }
    if (this.bareReported) {
      this.bareReported = false;
      this.deps.sink.componentGone(this.c, undefined, `${host} resolves again`, "up");
    }
    await Promise.all(
      check.map(async ({ address, family, current }) => {
        const started = performance.now();
        let ok = true;
        let detail: string;
        try {
          detail = await withTimeout(checkComponent(this.c, { address, family, port }), this.c.timeoutMs + 500, "check");
        } catch (e) {
          ok = false;
          detail = (e as Error).message || String(e);
        }
        if (!current) detail += ` (${host} no longer resolves to this address)`;
        if (this.closing) return;
        this.deps.sink.component(this.c, formatAddress(address, port), ok, performance.now() - started, detail);
      }),
    );
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.loop.close();
  }
}
