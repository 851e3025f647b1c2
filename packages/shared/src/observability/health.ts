import Fastify, { type FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import type { Logger } from "./log.ts";

/** A named check; it resolves when healthy and throws (or rejects) with the reason when not. */
export type HealthCheck = { name: string; check: () => Promise<void> };

export interface HealthServerOptions {
  host: string;
  port: number;
  registry: Registry;
  checks: HealthCheck[];
  logger: Logger;
  /** Extra facts shown on /healthz (ids, ports). */
  info?: () => Record<string, unknown>;
}

const CHECK_TIMEOUT_MS = 1500;

/** The usual checks: the database answers a query, the bus answers a ping. */
export function dependencyChecks(deps: { db?: { query(sql: string): Promise<unknown> }; bus?: { ping(): Promise<void> } }, names = { db: "postgres", bus: "redis" }): HealthCheck[] {
  const checks: HealthCheck[] = [];
  const { db, bus } = deps;
  if (db) checks.push({ name: names.db, check: async () => void (await db.query("SELECT 1")) });
  if (bus) checks.push({ name: names.bus, check: () => bus.ping() });
  return checks;
}

/** `/healthz` (200 when every check passes, 503 naming the failing ones) and `/metrics`. */
export function buildHealthApp(opts: Omit<HealthServerOptions, "host" | "port">): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get("/healthz", async (_req, reply) => {
    const results = await Promise.all(opts.checks.map(async (c) => ({ name: c.name, error: await runCheck(c) })));
    const failing = results.filter((r) => r.error !== undefined);
    const checks = Object.fromEntries(results.map((r) => [r.name, r.error ?? "ok"]));
    return reply.code(failing.length === 0 ? 200 : 503).send({ status: failing.length === 0 ? "ok" : "fail", checks, ...opts.info?.() });
  });
  app.get("/metrics", async (_req, reply) => {
    return reply.header("content-type", opts.registry.contentType).send(await opts.registry.metrics());
  });
  return app;
}

async function runCheck(c: HealthCheck): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      c.check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return undefined;
  } catch (e) {
    return (e as Error).message || String(e);
  } finally {
    clearTimeout(timer);
  }
}

export class HealthServer {
  readonly name = "health";
  private readonly app: FastifyInstance;
  private readonly opts: HealthServerOptions;
  private started = false;
  private closed = false;
  address = "";

  constructor(opts: HealthServerOptions) {
    this.opts = opts;
    this.app = buildHealthApp(opts);
  }

  async start(): Promise<void> {
    this.address = await this.app.listen({ host: this.opts.host, port: this.opts.port });
    this.started = true;
    this.opts.logger.info({ address: this.address }, "health and metrics server listening");
  }

  async close(): Promise<void> {
    if (this.closed || !this.started) return;
    this.closed = true;
    await this.app.close();
  }
}
