/**
 * The HTTP API of SPEC.md ("Monitoring"), plus /healthz and /metrics from the shared health
 * app, on one fastify instance. Times are ISO-8601 UTC with milliseconds; percentages are
 * numbers with two decimals; delays are seconds.
 */
import type { FastifyInstance } from "fastify";
import { buildHealthApp, type HealthCheck, type Logger, type Registry } from "@pesan/shared/observability";
import type { HostMetric } from "../config/config.ts";
import type { Monitor } from "../monitor.ts";
import type { UserStats } from "../history/user-stats.ts";

export interface ApiDeps {
  monitor: Monitor;
  /** undefined when user statistics are disabled. */
  userStats: UserStats | undefined;
  registry: Registry;
  logger: Logger;
  checks: HealthCheck[];
  info?: () => Record<string, unknown>;
  /** More routes on the same server (the dashboard, the Telegram webhook). */
  routes?: Array<(app: FastifyInstance) => void>;
}

export function buildApiApp(deps: ApiDeps): FastifyInstance {
  const app = buildHealthApp({ registry: deps.registry, logger: deps.logger, checks: deps.checks, info: deps.info });
  const { monitor } = deps;

  app.addHook("onSend", async (_req, reply) => {
    reply.header("cache-control", "no-store");
  });

  /**
   * 200 {cpu, mem, hdd}: the last reading of each, null for one whose last probe failed or has
   * not run yet. 503 {error, since, cpu: null, mem: null, hdd: null} while the server cannot be
   * reached: old numbers would look live. 404 {error} for a server the config does not name.
   */
  app.get<{ Params: { server: string } }>("/api/rmon/:server", async (req, reply) => {
    const host = monitor.host(req.params.server);
    if (!host) return reply.code(404).send({ error: `unknown server ${JSON.stringify(req.params.server)}` });
    if (host.reachable === false) {
      const since = host.since?.toISOString() ?? null;
      return reply.code(503).send({ error: `server ${req.params.server} is unreachable${since ? ` since ${since}` : ""}`, since, cpu: null, mem: null, hdd: null });
    }
    const value = (m: HostMetric) => {
      const r = host.metrics[m];
      return r && r.error === undefined ? r.value : null;
    };
    return { cpu: value("cpu"), mem: value("mem"), hdd: value("hdd") };
  });

  /** {server: {service: {status: "On"|"Off", updatetime}}}; Off also when the status could not be read. */
  app.get("/api/svcstats", async () => {
    const out: Record<string, Record<string, { status: "On" | "Off"; updatetime: string }>> = {};
    for (const [target, services] of monitor.serviceStates()) {
      out[target] = {};
      for (const [service, r] of services) out[target][service] = { status: r.status, updatetime: r.at.toISOString() };
    }
    return out;
  });

  /** {probe: {status: OK|FAIL|EXPIRED, updatetime, delay: seconds or null, expired: expiry in seconds}}. */
  app.get("/api/messaging", async () => {
    const out: Record<string, { status: string; updatetime: string; delay: number | null; expired: number }> = {};
    for (const [probe, r] of monitor.messagingStates()) out[probe] = { status: r.status, updatetime: r.at.toISOString(), delay: r.delaySeconds, expired: r.expirySeconds };
    return out;
  });

  /** {today, yesterday, week, month, total}: new users per UTC calendar period. */
  app.get("/api/userstats", async (_req, reply) => {
    if (!deps.userStats) return reply.code(404).send({ error: "user statistics are disabled in the config (userStats.enabled)" });
    try {
      return await deps.userStats.get();
    } catch (e) {
      deps.logger.warn({ err: e }, "user statistics query failed");
      return reply.code(503).send({ error: `cannot read the users table: ${(e as Error).message}` });
    }
  });

  /** Not in SPEC.md: every probed address, for the dashboard. */
  app.get("/api/components", async () => {
    const out: Record<string, Record<string, { type: string; status: "up" | "down"; updatetime: string; latency: number; detail: string }>> = {};
    for (const c of monitor.componentStates()) {
      (out[c.name] ??= {})[c.address ?? "(unresolved)"] = {
        type: c.type,
        status: c.ok ? "up" : "down",
        updatetime: c.at.toISOString(),
        latency: Math.round(c.latencyMs) / 1000,
        detail: c.detail,
      };
    }
    return out;
  });

  /** Not in SPEC.md: what is down now and since when, as this replica sees it. */
  app.get("/api/down", async () => monitor.down().map((d) => ({ component: d.component, since: d.since.toISOString(), detail: d.detail })));

  for (const register of deps.routes ?? []) register(app);

  return app;
}

/** The API server as a lifecycle component. */
export class ApiServer {
  readonly name = "http";
  readonly app: FastifyInstance;
  private readonly host: string;
  private readonly port: number;
  private readonly logger: Logger;
  private started = false;
  private closed = false;
  address = "";

  constructor(deps: ApiDeps, listen: { host: string; port: number }) {
    this.app = buildApiApp(deps);
    this.host = listen.host;
    this.port = listen.port;
    this.logger = deps.logger;
  }

  async start(): Promise<void> {
    this.address = await this.app.listen({ host: this.host, port: this.port });
    this.started = true;
    this.logger.info({ address: this.address }, "monitor API listening");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.started) await this.app.close();
  }
}
